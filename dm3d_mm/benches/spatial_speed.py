"""SPSS-Conv spatial pruning: 3D-backbone wall time and MACs against the dense SparseEncoder
(SPSS-Conv and Ada3D-style input-column dropping).

Side by side in one run, on the same frames, timings interleaved (best of --repeats); two
dense baselines: mmdet3d's SparseEncoder, and the same convs with the BEV scatter the pruned
encoders use (sparse_to_bev), so the speed-up from pruning alone is visible too:
  * the demo SECOND encoder (narrow channels, 0.1 m voxels) with its checkpoint;
  * mmdet3d's full SECOND KITTI encoder (16-64 channels, 0.05 m voxels), random weights;
at 0, 30, 50, 70 % voxel pruning, with the dense weights (encoder timing and MACs only; the
trained spatial detectors, their mAP and whole-detector times: tools/bench.py spatial_detectors).
Example: python tools/bench.py spatial_speed --frames 8 --repeats 3
"""
import copy
import json
import os
import os.path as osp
import time

import torch
from mmdet3d.registry import MODELS

from ..apis import load_config
from ..apis.kitti_summary import CLASSES
from ..apis.model import build_detector
from ..apis.prune import calibration_batches
from ..cost import FlopsCounter
from ..registry import BENCHES
from .base import Bench
from .helpers import encoder_inputs

SETTINGS = {  # config, checkpoint, Ada3D predictor cell size (voxels)
    'demo SECOND': ('configs/demo/second_synth-kitti_cpu.py',
                    'checkpoints/second_synth-kitti_cpu.pth', 8),
    'mmdet3d SECOND (full)': ('mmdet3d::second/second_hv_secfpn_8xb6-80e_kitti-3d-3class.py',
                              None, 8),
}



def spss_encoder(cfg, dense, ratio, gemm, passthrough='conv'):
    c = copy.deepcopy(cfg.model.middle_encoder)
    c.update(type='SPSSSparseEncoder', prune_ratios=ratio, passthrough=passthrough)
    enc = MODELS.build(c)
    enc.load_state_dict(dense.state_dict())
    for m in enc.modules():
        if hasattr(m, 'gemm_backend'):
            m.gemm_backend = gemm
    return enc.eval()


def ada3d_encoder(cfg, dense, ratio, downsample):
    """Ada3D-style: drop the voxels of the least important ``ratio`` of BEV columns at the
    encoder input (the predictor is untrained here: timing and MACs only)."""
    c = copy.deepcopy(cfg.model.middle_encoder)
    c.update(type='Ada3DSparseEncoder', keep_ratios=dict(input=1.0 - ratio),
             predictor=dict(downsample=downsample))
    torch.manual_seed(0)  # the same (untrained) predictor, so one ranking for every ratio
    enc = MODELS.build(c)
    missing, unexpected = enc.load_state_dict(dense.state_dict(), strict=False)
    assert not unexpected and all(k.startswith('predictor.') for k in missing)
    return enc.eval()


def measure(encoders, inputs, repeats):
    best = {name: float('inf') for name in encoders}
    macs = {}
    with torch.no_grad():
        for name, enc in encoders.items():  # warm-up + MACs
            with FlopsCounter(enc) as counter:
                for i in inputs:
                    enc(*i)
            macs[name] = counter.total_macs()
        for _ in range(repeats):
            for name, enc in encoders.items():
                t0 = time.perf_counter()
                for i in inputs:
                    enc(*i)
                best[name] = min(best[name], (time.perf_counter() - t0) / len(inputs))
    return best, macs


def car_ped_cyc(summary):
    return ' | '.join(f"{summary.get(c, {}).get('moderate', float('nan')):.1f}"
                      for c in CLASSES)


@BENCHES.register_module(name='spatial_speed')
class SpatialSpeedBench(Bench):
    """SPSS-Conv and Ada3D encoders: wall time and MACs against dense."""

    def add_arguments(self, p) -> None:
        p.add_argument('--data-root', default='data/synth_kitti')
        p.add_argument('--frames', type=int, default=8)
        p.add_argument('--repeats', type=int, default=3)
        p.add_argument('--ratios', type=float, nargs='+', default=[0.3, 0.5, 0.7])
        p.add_argument('--gemm', choices=['spconv', 'torch'], default='torch',
                       help='who multiplies on the pruned rulebooks')
        p.add_argument('--out', default='work_dirs/bench_spatial')

    def run(self, args) -> None:
        os.makedirs(args.out, exist_ok=True)
        print(f'torch threads: {torch.get_num_threads()}')
        result = {}
        lines = ['| encoder | method | voxel pruning | MACs / dense | wall / dense | '
                 'wall / dense + fast scatter | ms per frame |',
                 '|---|---|---:|---:|---:|---:|---:|']
        for title, (config, ckpt, ada_cell) in SETTINGS.items():
            cfg = load_config(config, data_root=args.data_root)
            model = build_detector(cfg, ckpt)
            inputs = encoder_inputs(model, calibration_batches(cfg, args.frames, 'val'))[1]
            dense = model.middle_encoder.eval()
            # two dense baselines: mmdet3d's SparseEncoder as shipped, and the same convs with the
            # pruned encoders' BEV scatter (sparse_to_bev), so the table separates what pruning
            # saves from what the faster scatter saves
            encoders = {('dense', 0.0): dense,
                        ('dense + fast BEV scatter', 0.0): spss_encoder(cfg, dense, 0.0, args.gemm)}
            encoders.update({('SPSS-Conv', r): spss_encoder(cfg, dense, r, args.gemm)
                             for r in args.ratios})
            encoders.update({('SPSS-Conv, block pass-through', r):
                             spss_encoder(cfg, dense, r, args.gemm, 'block') for r in args.ratios})
            encoders.update({('Ada3D input columns', r): ada3d_encoder(cfg, dense, r, ada_cell)
                             for r in args.ratios})
            best, macs = measure(encoders, inputs, args.repeats)
            base, fast = ('dense', 0.0), ('dense + fast BEV scatter', 0.0)
            result[title] = dict(seconds={f'{m} {r}': v for (m, r), v in best.items()},
                                 macs={f'{m} {r}': v for (m, r), v in macs.items()},
                                 voxels=sum(len(i[0]) for i in inputs) / len(inputs))
            for key in encoders:
                lines.append(f'| {title} | {key[0]} | {key[1]:.0%} | '
                             f'{macs[key] / macs[base]:.3f} | '
                             f'{best[key] / best[base]:.3f} | {best[key] / best[fast]:.3f} | '
                             f'{best[key] * 1e3:.1f} |')
        print('\n'.join(lines))
        with open(osp.join(args.out, 'bench_spatial.json'), 'w') as f:
            json.dump(result, f, indent=1, default=str)
