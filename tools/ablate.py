"""Spatial vs weight sparsity ablation on the demo benchmark (DM3D paper Tab. 4-6, Fig. 1).

Cells: dense, SPSS-Conv spatial pruning (50 % voxels), DM3D weight pruning and spatial +
weight at each --budgets; --parts adds weight pruning of 3D / 2D / head alone (Tab. 4),
--actual the actual-distortion estimator (Tab. 5). Every pruned cell is fine-tuned for
--epochs with the masks kept, then evaluated on val. Results: WORK_DIR/ablation.json (a
re-run skips finished cells), markdown tables on stdout and WORK_DIR/ablation.md, and the
AP-against-FLOPs plot WORK_DIR/ap_vs_flops.png.

Example: python tools/ablate.py --budgets 0.5 0.33 --parts --actual
"""
import argparse
import os.path as osp

import dm3d_mm  # noqa: F401
from dm3d_mm.apis.ablate import DENSE_CKPT, Ablation, plan
from dm3d_mm.apis.ablate_report import (plot_ap_vs_flops, table_estimators, table_parts,
                                        table_spatial_weight)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--budgets', type=float, nargs='+', default=[0.5, 0.33])
    p.add_argument('--parts', action='store_true', help='also 3D / 2D / head alone (Tab. 4)')
    p.add_argument('--actual', action='store_true', help='also actual distortion (Tab. 5)')
    p.add_argument('--epochs', type=int, default=None,
                   help="fine-tune epochs (default: each config's schedule; 0: no fine-tune)")
    p.add_argument('--calib-frames', type=int, default=16)
    p.add_argument('--data-root', default='data/synth_kitti')
    p.add_argument('--checkpoint', default=DENSE_CKPT, help='dense demo checkpoint')
    p.add_argument('--work-dir', default='work_dirs/ablate')
    p.add_argument('--device', help='cuda or cpu (default: cuda when available)')
    args = p.parse_args()
    if any(not 0 < b <= 1 for b in args.budgets):
        p.error(f'budgets are fractions of the dense FLOPs in (0, 1], got {args.budgets}')
    abl = Ablation(args.work_dir, args.data_root, epochs=args.epochs,
                   calib_frames=args.calib_frames, dense_ckpt=args.checkpoint,
                   device=args.device)
    for cell in plan(args.budgets, parts=args.parts, actual=args.actual):
        abl.run(cell)
    text = '\n\n'.join(t for t in (table_spatial_weight(abl.results), table_parts(abl.results),
                                   table_estimators(abl.results)) if t)
    print('\n' + text)
    with open(osp.join(args.work_dir, 'ablation.md'), 'w') as f:
        f.write(text + '\n')
    png = plot_ap_vs_flops(abl.results, osp.join(args.work_dir, 'ap_vs_flops.png'))
    print(f'\n[ablate] results: {abl.path}; plot: {png}')


if __name__ == '__main__':
    main()
