"""Which object centres an Ada3D model's BEV dropping keeps: per class, the share of GT box
centres whose BEV pixel is non-empty after the 3D encoder, and the share it keeps after the
BEV drop, on val frames.

A centre-based head (CenterPoint) has to place its heatmap peak at the box centre's pixel:
a predictor that ranks objects well keeps nearly every non-empty centre pixel; a centre pixel
that no point reaches is empty whatever the predictor does.
Example: python tools/bench.py ada3d_centre_keep configs/demo/centerpoint_synth-kitti_cpu_ada3d.py \
    checkpoints/centerpoint_synth-kitti_cpu_ada3d.pth --frames 100
(--cfg-options model.pts_backbone.grow_per_block=True for a model trained with growing blocks)
"""

import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope

from ..apis import load_config
from ..apis.cli import add_model_args
from ..apis.model import build_detector
from ..registry import BENCHES
from ..spatial import Ada3DSparseEncoder
from .base import Bench


def centre_pixels(boxes: torch.Tensor, pc_range, hw) -> torch.Tensor:
    """(N, 2) (row, col) BEV pixels of the boxes' centres on an (H, W) map over ``pc_range``;
    -1 for a centre outside the map."""
    h, w = hw
    col = ((boxes[:, 0] - pc_range[0]) / ((pc_range[3] - pc_range[0]) / w)).floor().long()
    row = ((boxes[:, 1] - pc_range[1]) / ((pc_range[4] - pc_range[1]) / h)).floor().long()
    pix = torch.stack([row, col], 1)
    pix[(col < 0) | (col >= w) | (row < 0) | (row >= h)] = -1
    return pix


@BENCHES.register_module(name='ada3d_centre_keep')
class Ada3dCentreKeepBench(Bench):
    """Which GT object centres an Ada3D model's BEV dropping keeps, per class."""

    def add_arguments(self, p) -> None:
        p.add_argument('config')
        p.add_argument('checkpoint')
        p.add_argument('--frames', type=int, default=100)
        p.add_argument('--data-root', default='data/synth_kitti')
        add_model_args(p)

    def run(self, args) -> None:
        from mmdet3d.registry import DATASETS
        cfg = load_config(args.config, args.cfg_options, data_root=args.data_root)
        model = build_detector(cfg, args.checkpoint, args.device, not args.allow_partial)
        encoder = next((m for m in model.modules() if isinstance(m, Ada3DSparseEncoder)), None)
        if encoder is None or 'bev' not in encoder.keep_ratios:
            raise SystemExit(f'{args.config}: no Ada3D encoder dropping BEV pixels in the model')
        bev_ratio = encoder.keep_ratios['bev']
        with DefaultScope.overwrite_default_scope('mmdet3d'):
            ds = DATASETS.build(cfg.val_dataloader.dataset)
        classes = list(cfg.class_names)
        totals = {c: [0, 0, 0] for c in classes}  # boxes on the map, centre non-empty, kept
        density = [0, 0]
        with torch.no_grad():
            for i in range(min(args.frames, len(ds))):
                ann = ds.get_ann_info(i)
                batch = pseudo_collate([ds[i]])
                masks = []
                for r in (1.0, bev_ratio):  # the non-empty pixels, then those the drop keeps
                    encoder.keep_ratios['bev'] = r
                    model.test_step(batch)
                    masks.append(encoder.last_bev_mask[0].cpu())
                encoder.keep_ratios['bev'] = bev_ratio
                active, kept = masks
                density[0] += int(active.sum())
                density[1] += int(kept.sum())
                pix = centre_pixels(ann['gt_bboxes_3d'].tensor, cfg.point_cloud_range, active.shape)
                for (row, col), label in zip(pix.tolist(), list(ann['gt_labels_3d'])):
                    if row < 0 or label < 0:
                        continue
                    t = totals[classes[label]]
                    t[0] += 1
                    t[1] += int(active[row, col])
                    t[2] += int(kept[row, col])
        print(f'{args.config}, {min(args.frames, len(ds))} val frames; the BEV drop keeps '
              f'{density[1] / max(density[0], 1):.3f} of the non-empty pixels')
        print('| class | boxes | centre pixel non-empty | centre pixel kept | kept / non-empty |')
        print('|---|---:|---:|---:|---:|')
        for c, (n, active, kept) in totals.items():
            print(f'| {c} | {n} | {active / max(n, 1):.3f} | {kept / max(n, 1):.3f} | '
                  f'{kept / max(active, 1):.3f} |')
