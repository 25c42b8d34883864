"""Does structured (kernel-offset) weight sparsity run faster? The demo SECOND's 3D encoder
pruned by DM3D to a fraction of its own joint FLOPs, unstructured against whole kernel
offsets, timed side by side with the dense detector.

Rows: dense; DM3D 'weight' granularity (masks; spconv still runs every weight: counted only);
DM3D 'offset' granularity with masks only (the same spconv kernels) and with the removed
offsets skipped (``skip_pruned_offsets``: spconv's gather-GEMM-scatter on a rulebook without
their pairs). Per row: joint GMACs, val 3D AP40 moderate before any fine-tuning (unless
--no-ap), wall time per frame of the whole detector and of its 3D / 2D / head parts as
ratios to dense (interleaved, best of --repeats, same frames).

Example: python bench/offset_speed.py --budget 0.5 --frames 8 --repeats 3
"""
import argparse
import copy
import json
import os.path as osp
from collections import OrderedDict

import dm3d_mm  # noqa: F401
from dm3d_mm.apis.ablate import joint_gmacs
from dm3d_mm.apis.demo import evaluate_model
from dm3d_mm.apis.flops import build_detector
from dm3d_mm.apis.wall_time import add_bench_args, bench_setup, measure, ratio_table
from dm3d_mm.weight import DM3DPruner
from dm3d_mm.weight.offset_skip import skip_pruned_offsets

CONFIG = 'configs/demo/second_synth-kitti_cpu.py'
CKPT = 'checkpoints/second_synth-kitti_cpu.pth'
CLASSES = ('Car', 'Pedestrian', 'Cyclist')


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--budget', type=float, default=0.5,
                   help="fraction of the 3D encoder's own joint FLOPs kept")
    args = add_bench_args(p, 'work_dirs/bench_offset_speed').parse_args()
    cfg, calib, frames, dense = bench_setup(args, CONFIG, CKPT)
    models = OrderedDict(dense=dense)
    for gran in ('weight', 'offset'):
        model = build_detector(cfg, CKPT)
        DM3DPruner(args.budget, parts=['middle_encoder'], budget_of='parts', num_ratios=16,
                   granularity=gran, progress=False).prune(model, calib)
        models[f'DM3D 3D {args.budget:g}, {gran}, masks'] = model.eval()
    skipping = copy.deepcopy(models[f'DM3D 3D {args.budget:g}, offset, masks'])
    swapped = skip_pruned_offsets(skipping)
    print(f'offset-skipping layers: {len(swapped)}')
    models[f'DM3D 3D {args.budget:g}, offset, skipped'] = skipping
    rows = OrderedDict()
    for i, (name, model) in enumerate(models.items()):
        rows[name] = dict(gmacs=joint_gmacs(model, frames))
        if not args.no_ap and not name.endswith('skipped'):  # same weights as 'masks'
            ap = evaluate_model(model, cfg, osp.join(args.out, f'eval{i}'))
            rows[name].update(ap=ap, mAP=sum(ap[c]['moderate'] for c in CLASSES) / 3)
    times = measure(models, frames, args.repeats, args.voxelizer)
    print(ratio_table(rows, times, ms_of='3D'))
    with open(osp.join(args.out, 'bench_offset_speed.json'), 'w') as f:
        json.dump(rows, f, indent=1)


if __name__ == '__main__':
    main()
