"""Ada3D detectors: mmdet3d's VoxelNet (SECOND) and CenterPoint whose loss also trains the
BEV importance predictor of an Ada3DSparseEncoder (MSE of its sigmoid to a gaussian centre
heatmap of the GT boxes)."""
from typing import Optional

import torch
import torch.nn.functional as F
from mmdet3d.models.detectors import CenterPoint, VoxelNet
from mmdet3d.registry import MODELS

from ..errors import UnfitModel
from .bev_importance import center_heatmap
from .loss_settings import detector_voxel_layer, loss_settings


class Ada3DImportanceLoss:
    """The importance loss and Ada3D's three training steps, shared by the Ada3D detectors.

    Ada3D trains in three steps (configs/demo/second_synth-kitti_cpu_ada3d_stage{1,2}.py and
    second_synth-kitti_cpu_ada3d.py): the detector with a sparsity-preserving 2D backbone;
    the predictor alone (``train_predictor_only``: the loss is the importance MSE and only
    the voxel encoder and the predictor run, so the detector's weights and norm statistics
    stay as they are); a joint fine-tune with the dropping in place. A detector class names
    the attributes of its voxel and middle encoders.
    """
    voxel_encoder_attr = 'voxel_encoder'
    middle_encoder_attr = 'middle_encoder'

    def _init_importance_loss(self, importance_loss: dict, train_predictor_only: bool):
        self.train_predictor_only = bool(train_predictor_only)
        if not hasattr(self.ada3d_encoder, 'predictor'):
            raise UnfitModel(f'{type(self).__name__} needs an Ada3DSparseEncoder as '
                            f'{self.middle_encoder_attr}, got '
                            f'{type(self.ada3d_encoder).__name__}')
        self.importance_loss = loss_settings(
            'importance_loss', importance_loss, dict(weight=1.0, min_overlap=0.1, min_radius=2),
            detector_voxel_layer(self))

    @property
    def ada3d_encoder(self):
        return getattr(self, self.middle_encoder_attr)

    def importance_target(self, batch_data_samples) -> torch.Tensor:
        """(B, 1, H, W) centre heatmap on the predictor's BEV grid."""
        cfg = self.importance_loss
        encoder = self.ada3d_encoder
        cell = [v * encoder.predictor.downsample for v in cfg['voxel_size'][:2]]
        grid = encoder.predictor.grid_shape(encoder.sparse_shape)
        gts = [s.gt_instances_3d for s in batch_data_samples]
        return center_heatmap(gts, len(gts), grid, cfg['point_cloud_range'], cell,
                              cfg['min_overlap'], cfg['min_radius'])

    def predictor_logits(self, batch_inputs_dict, batch_data_samples) -> torch.Tensor:
        """The predictor's logits alone (voxel encoder under no_grad: it is not trained)."""
        vox = batch_inputs_dict['voxels']
        voxel_encoder = getattr(self, self.voxel_encoder_attr)
        with torch.no_grad():
            feats = voxel_encoder(vox['voxels'], vox['num_points'], vox['coors'])
        enc = self.ada3d_encoder
        return enc.predictor(feats, vox['coors'], len(batch_data_samples), enc.sparse_shape)

    def loss(self, batch_inputs_dict, batch_data_samples, **kwargs):
        target = self.importance_target(batch_data_samples)  # before the head touches GTs
        if self.train_predictor_only:
            losses = {}
            logits = self.predictor_logits(batch_inputs_dict, batch_data_samples)
        else:
            losses = super().loss(batch_inputs_dict, batch_data_samples, **kwargs)
            logits = self.ada3d_encoder.last_logits
        target = target.to(logits.device)
        losses['loss_importance'] = self.importance_loss['weight'] * F.mse_loss(
            torch.sigmoid(logits), target)
        return losses


@MODELS.register_module()
class Ada3DVoxelNet(Ada3DImportanceLoss, VoxelNet):
    """VoxelNet (SECOND) + ``loss_importance``; needs
    ``middle_encoder.type='Ada3DSparseEncoder'``. See :class:`Ada3DImportanceLoss`.

    Args:
        *args: VoxelNet's arguments.
        importance_loss (dict): dict(weight=1.0, min_overlap=0.1, min_radius=2,
            point_cloud_range=None, voxel_size=None); the range and voxel size that place
            the heatmap default to the data preprocessor's voxel layer's.
        train_predictor_only (bool): the loss trains the importance predictor alone.
            Defaults to False.
        **kwargs: VoxelNet's keyword arguments.
    """

    def __init__(self, *args, importance_loss: Optional[dict] = None,
                 train_predictor_only: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_importance_loss(importance_loss, train_predictor_only)


@MODELS.register_module()
class Ada3DCenterPoint(Ada3DImportanceLoss, CenterPoint):
    """CenterPoint + ``loss_importance``; needs
    ``pts_middle_encoder.type='Ada3DSparseEncoder'``. The CenterHead's own heatmap target is
    the predictor's natural target. See :class:`Ada3DImportanceLoss`.

    Args:
        *args: CenterPoint's arguments.
        importance_loss (dict): as :class:`Ada3DVoxelNet`'s.
        train_predictor_only (bool): the loss trains the importance predictor alone.
            Defaults to False.
        **kwargs: CenterPoint's keyword arguments.
    """
    voxel_encoder_attr = 'pts_voxel_encoder'
    middle_encoder_attr = 'pts_middle_encoder'

    def __init__(self, *args, importance_loss: Optional[dict] = None,
                 train_predictor_only: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_importance_loss(importance_loss, train_predictor_only)
