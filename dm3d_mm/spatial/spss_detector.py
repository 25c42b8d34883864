"""SPSS detectors: mmdet3d's VoxelNet (SECOND) and CenterPoint whose loss also trains the
'foreground' voxel scorers of an SPSSSparseEncoder (binary cross-entropy against "the voxel
lies in a GT box").

SPS-Conv ranks voxels by sigmoid(mean |feature|), trusting that a trained detector gives
foreground voxels the larger features. On the synthetic demo benchmark that ranking is close
to random (measured on the trained 50 % model: 46-67 % of the foreground voxels kept where
50 % of all voxels are), so the pruning throws away object voxels. The 'foreground' scorer
learns the ranking from the boxes instead (as Ada3D's predictor learns its BEV map).
"""
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmdet3d.models.detectors import CenterPoint, VoxelNet
from mmdet3d.registry import MODELS

from ..errors import UnfitModel, UserError
from .importance import VoxelImportance
from .loss_settings import detector_voxel_layer, loss_settings


def voxel_centres(indices: torch.Tensor, spatial_shape: Sequence[int],
                  sparse_shape: Sequence[int], point_cloud_range: Sequence[float],
                  voxel_size: Sequence[float]):
    """(centres (M, 3) x, y, z in metres, cell size (3,) in metres) of sparse-tensor sites
    given as (batch, z, y, x) on a grid ``spatial_shape`` that strides the voxel grid
    ``sparse_shape`` (both z, y, x)."""
    dev = indices.device
    stride = torch.tensor([max(1, round(f / s)) for f, s in zip(sparse_shape, spatial_shape)],
                          dtype=torch.float32, device=dev).flip(0)  # x, y, z
    vs = torch.tensor(voxel_size, dtype=torch.float32, device=dev)
    lo = torch.tensor(point_cloud_range[:3], dtype=torch.float32, device=dev)
    xyz = indices[:, 1:].flip(1).float()
    return lo + (xyz * stride + 0.5) * vs, stride * vs


def points_in_boxes(points: torch.Tensor, boxes: torch.Tensor,
                    margin: torch.Tensor) -> torch.Tensor:
    """(M,) whether each point lies in any of the LiDAR boxes (T, >=7: x, y, z of the bottom
    centre, dx, dy, dz, yaw), each box grown by ``margin`` (3,) on every side."""
    if len(boxes) == 0 or len(points) == 0:
        return torch.zeros(len(points), dtype=torch.bool, device=points.device)
    boxes = boxes[:, :7].to(points)
    d = points[:, None, :] - boxes[None, :, :3]
    cos, sin = torch.cos(boxes[:, 6]), torch.sin(boxes[:, 6])
    lx = d[..., 0] * cos + d[..., 1] * sin
    ly = -d[..., 0] * sin + d[..., 1] * cos
    half = boxes[:, 3:5] / 2 + margin[:2]
    inside = (lx.abs() <= half[:, 0]) & (ly.abs() <= half[:, 1]) & \
        (d[..., 2] >= -margin[2]) & (d[..., 2] <= boxes[:, 5] + margin[2])
    return inside.any(1)


class SPSSForegroundLoss:
    """``loss_voxel_fg``: per 'foreground' VoxelImportance of the middle encoder, the binary
    cross-entropy of its logits against the voxels that lie in a GT box (a site at a strided
    level counts when its centre is within half a cell of a box, grown by ``margin``
    metres to take the objects' surroundings as foreground too). Shared by the SPSS
    detectors; a detector class names its middle encoder attribute."""
    middle_encoder_attr = 'middle_encoder'

    def _init_foreground_loss(self, foreground_loss: dict):
        cfg = loss_settings('foreground_loss', foreground_loss, dict(weight=1.0, margin=0.0),
                            detector_voxel_layer(self))
        if not float(cfg['margin']) >= 0:
            raise UserError(f"foreground_loss margin must be >= 0 metres, got {cfg['margin']}")
        self.foreground_loss = cfg
        if not self.foreground_scorers():
            raise UnfitModel(f'{type(self).__name__} needs an SPSSSparseEncoder with '
                            "importance='foreground' as its " + self.middle_encoder_attr)

    def foreground_scorers(self) -> List[VoxelImportance]:
        encoder = getattr(self, self.middle_encoder_attr)
        return [m for m in encoder.modules()
                if isinstance(m, VoxelImportance) and m.mode == 'foreground']

    @staticmethod
    def gt_boxes(batch_data_samples) -> List[torch.Tensor]:
        """Per sample the GT boxes' (T, 7+) tensor, taken before the head's loss (which may
        replace the boxes by their tensors)."""
        return [s.gt_instances_3d.bboxes_3d.tensor.detach().clone() for s in batch_data_samples]

    def foreground_labels(self, scorer: VoxelImportance,
                          gt_boxes: List[torch.Tensor]) -> torch.Tensor:
        """(M,) bool: which sites the scorer last saw lie in a GT box (see the class)."""
        cfg = self.foreground_loss
        encoder = getattr(self, self.middle_encoder_attr)
        idx = scorer.last_indices
        centres, cell = voxel_centres(idx, scorer.last_spatial_shape, encoder.sparse_shape,
                                      cfg['point_cloud_range'], cfg['voxel_size'])
        labels = torch.zeros(len(idx), dtype=torch.bool, device=idx.device)
        for b, boxes in enumerate(gt_boxes):
            rows = torch.nonzero(idx[:, 0] == b).flatten()
            labels[rows] = points_in_boxes(centres[rows], boxes.to(centres.device),
                                           cell / 2 + float(cfg['margin']))
        return labels

    def loss(self, batch_inputs_dict, batch_data_samples, **kwargs):
        boxes = self.gt_boxes(batch_data_samples)
        losses = super().loss(batch_inputs_dict, batch_data_samples, **kwargs)
        terms = []
        for scorer in self.foreground_scorers():
            if scorer.last_logits is None:
                continue
            labels = self.foreground_labels(scorer, boxes)
            terms.append(F.binary_cross_entropy_with_logits(
                scorer.last_logits, labels.to(scorer.last_logits.dtype)))
            scorer.last_logits = scorer.last_indices = None
        if terms:
            losses['loss_voxel_fg'] = self.foreground_loss['weight'] * torch.stack(terms).mean()
        return losses


@MODELS.register_module()
class SPSSVoxelNet(SPSSForegroundLoss, VoxelNet):
    """VoxelNet (SECOND) + ``loss_voxel_fg``; needs ``middle_encoder.type=
    'SPSSSparseEncoder'`` with ``importance='foreground'``. See :class:`SPSSForegroundLoss`.

    Args:
        *args: VoxelNet's arguments.
        foreground_loss (dict): dict(weight=1.0, margin=0.0, point_cloud_range=None,
            voxel_size=None): ``margin`` (metres) grows every GT box for the labels; the
            range and voxel size that place the sites default to the data preprocessor's
            voxel layer's.
        **kwargs: VoxelNet's keyword arguments.
    """

    def __init__(self, *args, foreground_loss: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_foreground_loss(foreground_loss)


@MODELS.register_module()
class SPSSCenterPoint(SPSSForegroundLoss, CenterPoint):
    """CenterPoint + ``loss_voxel_fg``; needs ``pts_middle_encoder.type=
    'SPSSSparseEncoder'`` with ``importance='foreground'``.

    Args:
        *args: CenterPoint's arguments.
        foreground_loss (dict): as :class:`SPSSVoxelNet`'s.
        **kwargs: CenterPoint's keyword arguments.
    """
    middle_encoder_attr = 'pts_middle_encoder'

    def __init__(self, *args, foreground_loss: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_foreground_loss(foreground_loss)
