"""Where SPSS-Conv pays on CPU: one encoder stage's two submanifold blocks (conv, BN, ReLU),
dense against SPSS-pruned ('block' pass-through, magnitude ranking), per channel width.

The voxel sets are the demo's own (val frames voxelized by the demo SECOND's voxel layer, at
full resolution and after one and two stride-2 downsamplings); the features and weights are
random (wall time only). Per (resolution, width): voxels, dense and pruned ms per frame (best
of --repeats, the two interleaved frame by frame) and their ratio. The smallest width at
which the ratio drops below 1 is the rule ``SPSSSparseEncoder(min_prune_channels=...)``
applies: narrower convs stay dense, because their GEMMs are too small to pay for the scoring,
the keep masks and the restricted rulebooks.
Example: python tools/bench.py spss_layer_speed --frames 4 --widths 16 32 64 128
"""
import time

import torch
from spconv.pytorch import SparseConvTensor, SparseSequential, SubMConv3d
from torch import nn

from ..apis import load_config
from ..apis.model import build_detector
from ..apis.prune import calibration_batches
from ..registry import BENCHES
from ..spatial import SPSSBlock, SPSSSubMConv3d
from .base import Bench


def stage(width: int, prune_ratio: float, seed: int = 0) -> nn.Module:
    """Two (subm conv, BN, ReLU) blocks sharing one rulebook; pruned: SPSSBlocks."""
    torch.manual_seed(seed)
    blocks = []
    for _ in range(2):
        if prune_ratio > 0:
            conv = SPSSSubMConv3d(width, width, 3, padding=1, bias=False, indice_key='s',
                                  prune_ratio=prune_ratio)
            blocks.append(SPSSBlock(conv, nn.BatchNorm1d(width), nn.ReLU()))
        else:
            conv = SubMConv3d(width, width, 3, padding=1, bias=False, indice_key='s')
            blocks.append(SparseSequential(conv, nn.BatchNorm1d(width), nn.ReLU()))
    return SparseSequential(*blocks).eval()


def voxel_sets(frames: int, data_root: str):
    """(name, [(indices, spatial shape)] per frame) at full, 1/2 and 1/4 resolution."""
    cfg = load_config('configs/demo/second_synth-kitti_cpu.py', data_root=data_root)
    model = build_detector(cfg, None).eval()
    shape = list(model.middle_encoder.sparse_shape)
    full = []
    with torch.no_grad():
        for batch in calibration_batches(cfg, frames, 'val'):
            full.append(model.data_preprocessor(batch, False)['inputs']['voxels']['coors'])
    sets = []
    for level in range(3):
        s = [max(1, v // 2 ** level) for v in shape]
        per = []
        for idx in full:
            coarse = idx.clone()
            coarse[:, 1:] = torch.div(coarse[:, 1:], 2 ** level, rounding_mode='floor')
            per.append((torch.unique(coarse, dim=0).int(), s))
        sets.append((f'1/{2 ** level}' if level else 'full', per))
    return sets


def _time(model, make):
    x = make()
    t = time.perf_counter()
    model(x)
    return (time.perf_counter() - t) * 1e3


@BENCHES.register_module(name='spss_layer_speed')
class SpssLayerSpeedBench(Bench):
    """Where SPSS-Conv pays on the CPU: one encoder stage at several widths."""

    def add_arguments(self, p) -> None:
        p.add_argument('--frames', type=int, default=4)
        p.add_argument('--repeats', type=int, default=3)
        p.add_argument('--widths', type=int, nargs='+', default=[16, 32, 64, 128])
        p.add_argument('--prune-ratio', type=float, default=0.5)
        p.add_argument('--data-root', default='data/synth_kitti')

    def run(self, args) -> None:
        print(f'torch threads: {torch.get_num_threads()}')
        print('| resolution | width | voxels / frame | dense ms | SPSS ms | SPSS / dense |')
        print('|---|---:|---:|---:|---:|---:|')
        with torch.no_grad():
            for name, per in voxel_sets(args.frames, args.data_root):
                for width in args.widths:
                    dense, pruned = stage(width, 0.0), stage(width, args.prune_ratio)
                    pruned.load_state_dict(dense.state_dict())
                    g = torch.Generator().manual_seed(0)
                    feats = [torch.randn(len(idx), width, generator=g) for idx, _ in per]

                    def makers():  # a fresh tensor per call: no rulebook cached across calls
                        return [lambda f=f, i=i, s=s: SparseConvTensor(f, i, s, 1)
                                for f, (i, s) in zip(feats, per)]
                    for m in (dense, pruned):  # warm-up
                        m(makers()[0]())
                    d_ms, p_ms = [float('inf')] * len(per), [float('inf')] * len(per)
                    for _ in range(args.repeats):  # interleaved frame by frame
                        for k, make in enumerate(makers()):
                            d_ms[k] = min(d_ms[k], _time(dense, make))
                            p_ms[k] = min(p_ms[k], _time(pruned, make))
                    d, q = sum(d_ms) / len(per), sum(p_ms) / len(per)
                    voxels = sum(len(i) for i, _ in per) / len(per)
                    print(f'| {name} | {width} | {voxels:.0f} | {d:.2f} | {q:.2f} | {q / d:.3f} |')
