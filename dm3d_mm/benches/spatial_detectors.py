"""Spatially pruned demo SECONDs against the dense one, whole detectors side by side.

Per variant on the val split: 3D AP40 moderate (Car / Ped / Cyc, mAP), joint MACs per frame,
and wall time per frame of the whole detector (voxelization to head outputs) and of its 3D
(voxel encoder + sparse encoder, Ada3D's predictor included) and 2D (backbone + neck) parts,
each as a ratio to dense measured in the same run on the same frames (interleaved, best of
--repeats). Variants: the dense demo SECOND; the SPS-Conv SECOND trained with 50 % voxel
pruning in place, also run at 30 / 70 % (ratio changed at test time: marked so); the Ada3D
SECOND after its three steps, and its step-1 model (sparsity-preserving 2D backbone, no
dropping). A missing checkpoint is reported and skipped (``make checkpoints`` makes them).
Example: python tools/bench.py spatial_detectors --frames 8 --repeats 3
"""
import json
import os
import os.path as osp
from collections import OrderedDict

import torch

from ..apis import load_config
from ..apis.demo import evaluate_checkpoint
from ..apis.kitti_summary import summarize_kitti_metrics
from ..apis.model import build_detector
from ..apis.prune import calibration_batches
from ..registry import BENCHES
from ..studies.ablation import joint_gmacs
from ..studies.wall_time import VOXELIZERS, measure, ratio_table
from .base import Bench
from .helpers import with_ap

DEMO = 'configs/demo/second_synth-kitti_cpu'
VARIANTS = OrderedDict([  # name: (config, checkpoint, cfg options)
    ('dense', (f'{DEMO}.py', 'checkpoints/second_synth-kitti_cpu.pth', {})),
    # the dense model with Ada3D's upsampling kernel (one GEMM, no transposed-conv call):
    # how much of Ada3D's 2D gain is the kernel rather than the dropped pixels
    ('dense, GEMM upsampling', (f'{DEMO}.py', 'checkpoints/second_synth-kitti_cpu.pth', {
        'model.neck.upsample_cfg': dict(type='SparseBEVDeconv2d', bias=False)})),
    ('SPS-Conv 30 % (test-time ratio)', (f'{DEMO}_spss50.py',
                                         'checkpoints/second_synth-kitti_cpu_spss50.pth',
                                         {'model.middle_encoder.prune_ratios': 0.3})),
    ('SPS-Conv 50 %', (f'{DEMO}_spss50.py', 'checkpoints/second_synth-kitti_cpu_spss50.pth',
                       {})),
    ('SPS-Conv 70 % (test-time ratio)', (f'{DEMO}_spss50.py',
                                         'checkpoints/second_synth-kitti_cpu_spss50.pth',
                                         {'model.middle_encoder.prune_ratios': 0.7})),
    ('SPS-Conv 50 %, foreground ranking, 0.3 m margin', (
        f'{DEMO}_spss50_fg-margin.py', 'checkpoints/second_synth-kitti_cpu_spss50_fg-margin.pth',
        {})),
    ('Ada3D step 1 (SP-BN, sparse 2D, no dropping)', (
        f'{DEMO}_ada3d_stage1.py', 'checkpoints/second_synth-kitti_cpu_ada3d_stage1.pth', {})),
    ('Ada3D', (f'{DEMO}_ada3d.py', 'checkpoints/second_synth-kitti_cpu_ada3d.pth', {})),
])


@BENCHES.register_module(name='spatial_detectors')
class SpatialDetectorsBench(Bench):
    """Spatially pruned demo SECONDs against the dense one, side by side."""

    def add_arguments(self, p) -> None:
        p.add_argument('--data-root', default='data/synth_kitti')
        p.add_argument('--frames', type=int, default=8)
        p.add_argument('--repeats', type=int, default=3)
        p.add_argument('--no-ap', action='store_true', help='timings and FLOPs only')
        p.add_argument('--voxelizer', choices=VOXELIZERS, default='mmcv')
        p.add_argument('--only', nargs='+', metavar='TEXT',
                       help='run the variants whose name contains one of these (dense always)')
        p.add_argument('--out', default='work_dirs/bench_spatial_detectors')

    def run(self, args) -> None:
        os.makedirs(args.out, exist_ok=True)
        print(f'torch threads: {torch.get_num_threads()}')
        models, rows = OrderedDict(), OrderedDict()
        for name, (config, ckpt, options) in VARIANTS.items():
            if args.only and name != 'dense' and not any(t in name for t in args.only):
                continue
            if not osp.isfile(ckpt):
                print(f'skipped {name}: {ckpt} missing (make checkpoints)')
                continue
            cfg = load_config(config, cfg_options=options, data_root=args.data_root)
            models[name] = build_detector(cfg, ckpt).eval()
            batches = calibration_batches(cfg, args.frames, 'val')
            rows[name] = dict(gmacs=joint_gmacs(models[name], batches))
            if not args.no_ap:
                with_ap(rows[name], summarize_kitti_metrics(evaluate_checkpoint(
                    config, ckpt, args.data_root, osp.join(args.out, name.split()[0]),
                    cfg_options=options)))
        times = measure(models, batches, args.repeats, args.voxelizer)
        print(ratio_table(rows, times, ms_of='whole'))
        with open(osp.join(args.out, 'bench_spatial_detectors.json'), 'w') as f:
            json.dump(rows, f, indent=1)
