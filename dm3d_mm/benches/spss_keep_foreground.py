"""Which voxels an SPSS model keeps: per pruned layer, the share of object voxels kept
against the share of all voxels kept, on val frames.

A voxel (or a strided site) is an object voxel when its centre lies in a GT box grown by
half its cell (as ``SPSSVoxelNet``'s foreground loss labels it). A ranking that tells objects
from background keeps far more than ``1 - prune_ratio`` of them; SPS-Conv's magnitude ranking
on the demo benchmark keeps about as many as a random one would.
Example: python tools/bench.py spss_keep_foreground configs/demo/second_synth-kitti_cpu_spss50.py \
    checkpoints/second_synth-kitti_cpu_spss50.pth --frames 8
"""

import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope

from ..apis import load_config
from ..apis.model import build_detector
from ..registry import BENCHES
from ..spatial import SPSSSparseConv3d, SPSSSubMConv3d, points_in_boxes, voxel_centres
from .base import Bench


@BENCHES.register_module(name='spss_keep_foreground')
class SpssKeepForegroundBench(Bench):
    """Which voxels an SPSS model keeps: the share of object voxels per layer."""

    def add_arguments(self, p) -> None:
        p.add_argument('config')
        p.add_argument('checkpoint')
        p.add_argument('--frames', type=int, default=8)
        p.add_argument('--data-root', default='data/synth_kitti')

    def run(self, args) -> None:
        from mmdet3d.registry import DATASETS
        cfg = load_config(args.config, data_root=args.data_root)
        model = build_detector(cfg, args.checkpoint).eval()
        encoder = next((m for n, m in model.named_modules() if n.endswith('middle_encoder')), None)
        with DefaultScope.overwrite_default_scope('mmdet3d'):
            ds = DATASETS.build(cfg.val_dataloader.dataset)
        seen = {}
        layers = [(n, m) for n, m in model.named_modules()
                  if isinstance(m, (SPSSSubMConv3d, SPSSSparseConv3d)) and m.prune_ratio > 0]
        if not layers:
            raise SystemExit(f'{args.config}: no pruned SPSS layer in the model')
        for name, m in layers:
            m.register_forward_hook(lambda mod, inp, out, name=name: seen.__setitem__(
                name, (inp[0].indices, list(inp[0].spatial_shape), mod.last_keep)))
        totals = {}
        with torch.no_grad():
            for i in range(min(args.frames, len(ds))):
                boxes = ds.get_ann_info(i)['gt_bboxes_3d'].tensor
                seen.clear()
                model.test_step(pseudo_collate([ds[i]]))
                for name, (idx, shape, keep) in seen.items():
                    centres, cell = voxel_centres(idx, shape, encoder.sparse_shape,
                                                  cfg.point_cloud_range, cfg.voxel_size)
                    fg = points_in_boxes(centres, boxes.to(centres.device), cell / 2)
                    t = totals.setdefault(name, [0, 0, 0, 0])
                    t[0] += int(fg.sum())
                    t[1] += int((fg & keep).sum())
                    t[2] += len(keep)
                    t[3] += int(keep.sum())
        print('| layer | object voxels (share) | object voxels kept | all voxels kept |')
        print('|---|---:|---:|---:|')
        for name, (n_fg, k_fg, n, k) in totals.items():
            print(f'| {name} | {n_fg / max(n, 1):.3f} | {k_fg / max(n_fg, 1):.3f} | '
                  f'{k / max(n, 1):.3f} |')
