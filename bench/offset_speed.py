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
import os
import os.path as osp
from collections import OrderedDict

import torch

import dm3d_mm  # noqa: F401
from dm3d_mm.apis import load_config
from dm3d_mm.apis.ablate import joint_gmacs
from dm3d_mm.apis.demo import evaluate_model
from dm3d_mm.apis.flops import build_detector
from dm3d_mm.apis.prune import calibration_batches
from dm3d_mm.apis.wall_time import measure, ratio_table
from dm3d_mm.weight import DM3DPruner
from dm3d_mm.weight.offset_skip import skip_pruned_offsets

CONFIG = 'configs/demo/second_synth-kitti_cpu.py'
CKPT = 'checkpoints/second_synth-kitti_cpu.pth'
CLASSES = ('Car', 'Pedestrian', 'Cyclist')


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--budget', type=float, default=0.5,
                   help="fraction of the 3D encoder's own joint FLOPs kept")
    p.add_argument('--calib-frames', type=int, default=16)
    p.add_argument('--frames', type=int, default=8, help='val frames timed')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--data-root', default='data/synth_kitti')
    p.add_argument('--no-ap', action='store_true', help='timings and FLOPs only')
    p.add_argument('--out', default='work_dirs/bench_offset_speed')
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    print(f'torch threads: {torch.get_num_threads()}')
    cfg = load_config(CONFIG, data_root=args.data_root)
    calib = calibration_batches(cfg, args.calib_frames, 'train')
    frames = calibration_batches(cfg, args.frames, 'val')
    models = OrderedDict(dense=build_detector(cfg, CKPT).eval())
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
    times = measure(models, frames, args.repeats)
    print(ratio_table(rows, times, ms_of='3D'))
    with open(osp.join(args.out, 'bench_offset_speed.json'), 'w') as f:
        json.dump(rows, f, indent=1)


if __name__ == '__main__':
    main()
