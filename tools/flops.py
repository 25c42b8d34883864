"""Per-layer joint FLOPs (spatial x weight sparsity) of an mmdet3d detector.

Examples:
  python tools/flops.py configs/demo/second_synth-kitti_cpu.py \
      --checkpoint checkpoints/second_synth-kitti_cpu.pth --frames 8
  python tools/flops.py mmdet3d::second/second_hv_secfpn_8xb6-80e_kitti-3d-3class.py \
      --points data/synth_kitti/training/velodyne/000000.bin --json second.json
"""
import argparse
import json
import os
import os.path as osp

import dm3d_mm  # noqa: F401
from dm3d_mm.apis import load_config
from dm3d_mm.apis.cli import add_debug_arg, add_model_args, run_cli
from dm3d_mm.apis.config_utils import add_data_args, parse_ann_files
from dm3d_mm.apis.flops import count_on_dataset, count_on_points
from dm3d_mm.apis.model import build_detector, default_device
from dm3d_mm.cost.report import flops_report, markdown


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', help='config file (mmdet3d:: prefixes work)')
    p.add_argument('--checkpoint', help='weights (pruned ones count their zeros)')
    src = p.add_mutually_exclusive_group()
    src.add_argument('--frames', type=int, default=8, help='frames of the test split')
    src.add_argument('--points', help='one KITTI-format .bin (float32 x y z intensity)')
    add_data_args(p)
    p.add_argument('--json', help='write every number of the table here')
    add_model_args(p)
    add_debug_arg(p)
    return p.parse_args()


def main():
    args = parse_args()
    config = args.config
    cfg = load_config(config, args.cfg_options, data_root=args.data_root,
                      ann_files=parse_ann_files(args.ann_file))
    model = build_detector(cfg, args.checkpoint, args.device or default_device(),
                           strict=not args.allow_partial)
    if args.points:
        counter = count_on_points(model, args.points)
    else:
        counter = count_on_dataset(model, cfg, args.frames)
    report = flops_report(counter, model)
    report.update(config=config, checkpoint=args.checkpoint, points=args.points)
    print(markdown(report))
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
        print(f'\nwrote {args.json}')


if __name__ == '__main__':
    run_cli(main)
