"""Ada3D-style BEV importance: a light CNN on a BEV summary of the voxels predicts where the
objects are; it is trained against a gaussian centre heatmap of the ground-truth boxes."""
from typing import List, Sequence

import torch
from mmdet3d.models.utils import draw_heatmap_gaussian, gaussian_radius
from mmdet3d.registry import MODELS
from torch import nn


@MODELS.register_module()
class BEVImportancePredictor(nn.Module):
    """Logits (B, 1, H / d, W / d) of BEV-cell importance from voxel features.

    Input per BEV cell: the max of each voxel-feature channel over the cell's voxels and the
    log voxel count. ``downsample`` d sets the cell size in voxels.

    Args:
        in_channels (int): voxel-feature channels. Defaults to 4.
        feat_channels (int): channels of the hidden convs. Defaults to 16.
        downsample (int): BEV cell size in voxels. Defaults to 4.
        num_convs (int): hidden 3x3 conv-BN-ReLU layers. Defaults to 2.
    """

    dm3d_skip_pruning = True  # weight pruning leaves the predictor alone

    def __init__(self, in_channels: int = 4, feat_channels: int = 16, downsample: int = 4,
                 num_convs: int = 2):
        super().__init__()
        self.downsample = int(downsample)
        layers, c = [], in_channels + 1
        for _ in range(num_convs):
            layers += [nn.Conv2d(c, feat_channels, 3, padding=1, bias=False),
                       nn.BatchNorm2d(feat_channels), nn.ReLU(inplace=True)]
            c = feat_channels
        layers.append(nn.Conv2d(c, 1, 1))
        self.net = nn.Sequential(*layers)

    def grid_shape(self, sparse_shape: Sequence[int]) -> List[int]:
        d = self.downsample
        return [-(-int(sparse_shape[1]) // d), -(-int(sparse_shape[2]) // d)]

    def bev_input(self, feats, coors, batch_size, sparse_shape) -> torch.Tensor:
        h, w = self.grid_shape(sparse_shape)
        c = feats.shape[1]
        cell = (coors[:, 0].long() * h + coors[:, 2].long() // self.downsample) * w \
            + coors[:, 3].long() // self.downsample
        flat = feats.new_zeros(batch_size * h * w, c + 1)
        if len(feats):
            flat[:, :c] = float('-inf')
            flat[:, :c] = flat[:, :c].index_reduce(0, cell, feats, 'amax', include_self=True)
            flat[:, :c] = torch.where(torch.isinf(flat[:, :c]), torch.zeros_like(flat[:, :c]),
                                      flat[:, :c])
            # points per cell as a scatter-add (bincount would wait for the data's maximum)
            count = torch.zeros(len(flat), dtype=feats.dtype, device=feats.device)
            flat[:, c] = torch.log1p(count.index_add_(0, cell, torch.ones_like(cell,
                                                                             dtype=feats.dtype)))
        return flat.reshape(batch_size, h, w, c + 1).permute(0, 3, 1, 2).contiguous()

    def forward(self, feats, coors, batch_size, sparse_shape) -> torch.Tensor:
        return self.net(self.bev_input(feats, coors, batch_size, sparse_shape))


def center_heatmap(gt_instances_3d, batch_size: int, grid_hw: Sequence[int],
                   point_cloud_range: Sequence[float], cell_size: Sequence[float],
                   min_overlap: float = 0.1, min_radius: int = 2) -> torch.Tensor:
    """(B, 1, H, W) gaussian heatmap of the box centres on a BEV grid (CenterHead's recipe:
    gaussian_radius of the box footprint in cells, at least ``min_radius``)."""
    h, w = grid_hw
    out = torch.zeros(batch_size, 1, h, w)
    for b, inst in enumerate(gt_instances_3d):
        boxes = inst.bboxes_3d
        boxes = getattr(boxes, 'tensor', boxes)  # (x, y, z, dx, dy, dz, yaw, ...)
        if len(boxes) == 0:
            continue
        centres = boxes[:, :2].detach().cpu()
        dims = boxes[:, 3:5].detach().cpu()  # x size, y size
        for (x, y), (dx, dy) in zip(centres.tolist(), dims.tolist()):
            cx = (x - point_cloud_range[0]) / cell_size[0]
            cy = (y - point_cloud_range[1]) / cell_size[1]
            if not (0 <= cx < w and 0 <= cy < h):
                continue
            radius = gaussian_radius((torch.tensor(dy / cell_size[1]),
                                      torch.tensor(dx / cell_size[0])), min_overlap)
            radius = max(min_radius, int(radius))
            draw_heatmap_gaussian(out[b, 0], torch.tensor([int(cx), int(cy)]), radius)
    return out
