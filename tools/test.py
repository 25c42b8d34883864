"""Evaluate an mmdet3d detector checkpoint with dm3d_mm loaded.

Same core arguments as mmdet3d's tools/test.py: CONFIG CHECKPOINT --work-dir
--cfg-options --launcher; --show-dir saves visualisations.
"""
import argparse
import os.path as osp

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import dm3d_mm  # noqa: F401
from dm3d_mm.apis import add_runner_args, config_from_args, parse_runner_args
from dm3d_mm.apis.cli import add_debug_arg, run_cli
from dm3d_mm.apis.kitti_summary import metrics_summary
from dm3d_mm.errors import MissingFile


def parse_args():
    p = argparse.ArgumentParser(description='Test a 3D detector (dm3d_mm)')
    p.add_argument('config', help='test config file path')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--work-dir', help='the dir to save logs and metrics')
    p.add_argument('--show-dir', help='directory for visualisation images')
    return parse_runner_args(add_debug_arg(add_runner_args(p)))


def main():
    args = parse_args()
    if not osp.isfile(args.checkpoint):
        raise MissingFile(f'checkpoint not found: {args.checkpoint}')
    cfg = config_from_args(args)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        vis = cfg.default_hooks.visualization
        vis.draw = True
        vis.test_out_dir = args.show_dir
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    metrics = runner.test()
    print(metrics_summary(metrics))


if __name__ == '__main__':
    run_cli(main)
