"""BiPointNet's ablation on the demo PointPillars with a binarised pillar encoder.

Rows, in the seed's order: full precision, naive sign binarisation, + EMA, + EMA + LSR (the
same two-layer encoder, fine-tuned on the same schedule from the full-precision demo
checkpoint). Each row reports per-class moderate 3D AP, the binarised weights' storage
(float32 against bit-packed, and the whole checkpoint against its packed export), binary ops
(BOPs) and MAC equivalents (BOPs / 64). Results: WORK_DIR/binary_ablation.json (saved
after each row; a re-run skips finished rows and evaluates a row whose checkpoint exists),
the table on stdout and in WORK_DIR/binary_ablation.md.
Example: python tools/binary_ablation.py --work-dir work_dirs/bipfn
"""
import argparse
import os.path as osp

import dm3d_mm  # noqa: F401
from dm3d_mm.apis.cli import add_debug_arg, run_cli
from dm3d_mm.studies.binary_ablation import ROWS, BinaryAblation, table


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n'.join(__doc__.splitlines()[2:]))
    p.add_argument('--rows', nargs='+', default=list(ROWS), choices=list(ROWS))
    p.add_argument('--epochs', type=int, default=None,
                   help="fine-tune epochs (default: the configs' schedule)")
    p.add_argument('--flops-frames', type=int, default=8)
    p.add_argument('--seed', type=int, help="training seed (mmengine's randomness.seed)")
    p.add_argument('--data-root', default='data/synth_kitti')
    p.add_argument('--work-dir', default='work_dirs/binary_ablation')
    p.add_argument('--device', default='cpu', help='where FLOPs are counted')
    add_debug_arg(p)
    args = p.parse_args()
    if args.epochs is not None and args.epochs < 1:
        p.error(f'--epochs must be >= 1, got {args.epochs}')
    if args.flops_frames < 1:
        p.error(f'--flops-frames must be >= 1, got {args.flops_frames}')
    return args


def main():
    args = parse_args()
    seed = None if args.seed is None else dict(randomness=dict(seed=args.seed))
    abl = BinaryAblation(args.work_dir, args.data_root, epochs=args.epochs,
                         flops_frames=args.flops_frames, cfg_options=seed, device=args.device)
    text = table(abl.run(args.rows))
    print('\n' + text)
    with open(osp.join(args.work_dir, 'binary_ablation.md'), 'w') as f:
        f.write(text + '\n')
    print(f'\n[binary_ablation] results: {abl.results_path}')


if __name__ == '__main__':
    run_cli(main)
