"""Export a checkpoint with its binarised layers' weights bit-packed (8 signs per byte).

The export loads like any checkpoint (mmengine's load_from, tools/test.py, tools/flops.py):
BinaryLinear unpacks its signs on load, and the binarised forward is unchanged.
Example:
  python tools/export_binary.py configs/demo/pointpillars_synth-kitti_cpu_bipfn.py \
      work_dirs/bipfn/ema_lsr/epoch_6.pth --out work_dirs/bipfn/packed.pth
"""
import argparse
import os.path as osp

import dm3d_mm  # noqa: F401
from dm3d_mm.apis import load_config
from dm3d_mm.apis.cli import add_debug_arg, add_model_args, run_cli
from dm3d_mm.apis.model import build_detector
from dm3d_mm.binary import BinaryLinear
from dm3d_mm.errors import UserError
from dm3d_mm.studies.binary_ablation import binary_storage


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n'.join(__doc__.splitlines()[2:]))
    p.add_argument('config', help='config of the binarised detector')
    p.add_argument('checkpoint', help='its trained weights')
    p.add_argument('--out', required=True, help='the packed checkpoint to write')
    add_model_args(p)
    add_debug_arg(p)
    return p.parse_args()


def main():
    args = parse_args()
    if osp.abspath(args.out) == osp.abspath(args.checkpoint):
        raise UserError(f'--out {args.out} would overwrite the source checkpoint')
    cfg = load_config(args.config, args.cfg_options)
    model = build_detector(cfg, args.checkpoint, args.device or 'cpu',
                           strict=not args.allow_partial)
    if not any(isinstance(m, BinaryLinear) and m.enabled for m in model.modules()):
        raise UserError(f'{args.config} has no enabled binarised layer: nothing to pack')
    s = binary_storage(model, args.out)
    print(f"binarised weights: {s['binary_weight_bytes_fp32']} B float32 -> "
          f"{s['binary_weight_bytes_packed']} B packed "
          f"({s['binary_weight_bytes_fp32'] / s['binary_weight_bytes_packed']:.1f}x)")
    print(f"detector: {s['checkpoint_bytes_fp32'] / 1e6:.3f} MB float32 checkpoint -> "
          f"{s['packed_checkpoint_bytes'] / 1e6:.3f} MB packed checkpoint {args.out}")


if __name__ == '__main__':
    run_cli(main)
