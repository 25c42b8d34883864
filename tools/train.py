"""Train (or fine-tune) an mmdet3d detector with dm3d_mm loaded.

Same arguments as mmdet3d's tools/train.py: --work-dir, --amp, --auto-scale-lr,
--resume [CKPT], --cfg-options, --launcher.
"""
import argparse

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import dm3d_mm  # noqa: F401  (registers dm3d_mm modules, applies CPU fixes)
from dm3d_mm.apis import add_runner_args, config_from_args, parse_runner_args
from dm3d_mm.apis.cli import add_debug_arg, run_cli
from dm3d_mm.errors import UserError


def parse_args():
    p = argparse.ArgumentParser(description='Train a 3D detector (dm3d_mm)')
    p.add_argument('config', help='train config file path')
    p.add_argument('--work-dir', help='the dir to save logs and models')
    p.add_argument('--amp', action='store_true', help='enable automatic mixed precision')
    p.add_argument('--auto-scale-lr', action='store_true', help='scale lr with batch size')
    p.add_argument('--resume', nargs='?', type=str, const='auto',
                   help='resume from the given checkpoint, or the latest in work-dir')
    return parse_runner_args(add_debug_arg(add_runner_args(p)))


def build_config(args) -> Config:
    cfg = config_from_args(args)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if (cfg.get('auto_scale_lr') or {}).get('base_batch_size') is None:
            raise UserError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the '
                               'config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main():
    args = parse_args()
    cfg = build_config(args)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    run_cli(main)
