"""Cut the channels DM3D's channel granularity removed out of a pruned checkpoint.

Writes OUT_DIR/<config>_slim.py (channel widths rewritten, pruning hooks removed, load_from
the slim weights) and OUT_DIR/<config>_slim.pth: a smaller dense detector that plain mmdet3d
builds and loads, evaluates with tools/test.py and fine-tunes with tools/train.py.
Example:
  python tools/prune.py configs/demo/second_synth-kitti_cpu.py \
      --checkpoint checkpoints/second_synth-kitti_cpu.pth --flops-target 0.5 \
      --parts backbone neck --cfg-options pruning.granularity=channel --work-dir work_dirs/ch50
  python tools/slim.py configs/demo/second_synth-kitti_cpu.py work_dirs/ch50/pruned.pth \
      --out-dir work_dirs/ch50
"""
import argparse
import os.path as osp

import dm3d_mm  # noqa: F401
from dm3d_mm.apis import load_config
from dm3d_mm.apis.cli import add_debug_arg, add_model_args, run_cli
from dm3d_mm.apis.config_utils import add_data_args, parse_ann_files
from dm3d_mm.apis.demo import config_name
from dm3d_mm.apis.flops import count_on_dataset
from dm3d_mm.apis.model import build_detector
from dm3d_mm.apis.slim import export_slim
from dm3d_mm.errors import UserError


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n'.join(__doc__.splitlines()[2:]))
    p.add_argument('config', help='config of the pruned model')
    p.add_argument('checkpoint', help='channel-pruned checkpoint')
    p.add_argument('--out-dir', help='default: work_dirs/<config>_slim')
    add_data_args(p)
    p.add_argument('--frames', type=int, default=0,
                   help='count the joint FLOPs of both models on this many test frames')
    add_model_args(p)
    add_debug_arg(p)
    return p.parse_args()


def main():
    args = parse_args()
    if args.frames < 0:
        raise UserError(f'--frames must be >= 0, got {args.frames}')
    cfg = load_config(args.config, args.cfg_options, data_root=args.data_root,
                      ann_files=parse_ann_files(args.ann_file))
    name = config_name(args.config) + '_slim'
    out_dir = args.out_dir or osp.join('work_dirs', name)
    out = export_slim(cfg, args.checkpoint, out_dir, name, strict=not args.allow_partial,
                      device=args.device or 'cpu')
    for key, width in out['widths'].items():
        print(f"{key}: {out['widths_before'][key]} -> {width}")
    if args.frames:
        macs = {}
        for label, (c, ckpt) in dict(pruned=(cfg, args.checkpoint),
                                     slim=(load_config(out['config'], data_root=args.data_root,
                                                       ann_files=parse_ann_files(args.ann_file)),
                                           out['checkpoint'])).items():
            model = build_detector(c, ckpt, args.device or 'cpu',
                                   strict=not args.allow_partial or label == 'slim')
            counter = count_on_dataset(model, c, args.frames)
            macs[label] = sum(st.macs() for st in counter.layers.values()) / counter.frames
        print(f"joint GMACs per frame: pruned (counted) {macs['pruned'] / 1e9:.4f}, slim "
              f"(computed) {macs['slim'] / 1e9:.4f}")
    print(f"wrote {out['config']} and {out['checkpoint']}")


if __name__ == '__main__':
    run_cli(main)
