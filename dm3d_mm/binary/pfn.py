"""Binarised PointPillars encoder: mmdet3d's PillarFeatureNet / PFNLayer with BinaryLinear
layers, EMA max pooling and LSR, same arguments and state_dict keys (plus the LSR scales)."""
from typing import Optional

import torch
from mmdet3d.models.voxel_encoders import PillarFeatureNet
from mmdet3d.models.voxel_encoders.utils import PFNLayer
from mmdet3d.registry import MODELS
from torch import Tensor

from .ema import ema_max
from .layers import BinaryLinear, binary_options


class BinaryPFNLayer(PFNLayer):
    """PFNLayer with a BinaryLinear (same ``linear.weight`` key).

    When binarised, a layer whose output feeds another binary layer (not ``last_layer``)
    drops the ReLU (the next layer's sign is the non-linearity; after a ReLU every sign would
    be +1) and shifts its pooled max by EMA's d* (n = the points per pillar), so that the
    signs the next layer takes keep one bit of entropy. The last layer keeps mmdet3d's
    ReLU and max: its output goes to the full-precision 2D backbone.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        norm_cfg (dict): norm layer config. Defaults to BN1d as mmdet3d's.
        last_layer (bool): no concatenation of the pooled features. Defaults to False.
        mode (str): 'max' or 'avg' pooling. Defaults to 'max'.
        binarize_input (bool): binarise this layer's inputs. Defaults to True.
        ema (bool): Entropy-Maximising Aggregation on a non-last layer. Defaults to True.
        lsr (bool): Layer-wise Scale Recovery. Defaults to True.
        enabled (bool): False: mmdet3d's full-precision PFNLayer exactly. Defaults to True.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 norm_cfg: Optional[dict] = dict(type='BN1d', eps=1e-3, momentum=0.01),
                 last_layer: bool = False, mode: str = 'max', binarize_input: bool = True,
                 ema: bool = True, lsr: bool = True, enabled: bool = True):
        super().__init__(in_channels, out_channels, norm_cfg, last_layer, mode)
        self.linear = BinaryLinear(in_channels, self.units, bias=False,
                                   binarize_input=binarize_input, lsr=lsr, enabled=enabled)
        self.ema = ema

    @property
    def binarised(self) -> bool:
        return self.linear.enabled

    def forward(self, inputs: Tensor, num_voxels: Optional[Tensor] = None,
                aligned_distance: Optional[Tensor] = None) -> Tensor:
        if not self.binarised or self.last_vfe:
            return super().forward(inputs, num_voxels, aligned_distance)
        x = self.linear(inputs)
        x = self.norm(x.permute(0, 2, 1).contiguous()).permute(0, 2, 1).contiguous()
        if aligned_distance is not None:
            x = x.mul(aligned_distance.unsqueeze(-1))
        if self.mode == 'max':
            x_max = ema_max(x, self.ema)
        else:
            x_max = x.sum(dim=1, keepdim=True) / num_voxels.type_as(inputs).view(-1, 1, 1)
        return torch.cat([x, x_max.repeat(1, inputs.shape[1], 1)], dim=2)


@MODELS.register_module()
class BinaryPillarFeatureNet(PillarFeatureNet):
    """PillarFeatureNet whose PFN layers are BinaryPFNLayers, switched on in a config:

        voxel_encoder=dict(type='BinaryPillarFeatureNet', ..., binary=dict(ema=True, lsr=True))

    The first layer's inputs (raw point coordinates and offsets) stay full precision, as
    BiPointNet keeps a network's input; its weights and all later layers are binarised.

    Args:
        *args: PillarFeatureNet's arguments.
        binary (dict, optional): ``ema``, ``lsr``, ``enabled`` (False: full precision, equal
            to PillarFeatureNet) and ``binarize_first_input``. Defaults to all on, first
            input full precision.
        **kwargs: PillarFeatureNet's keyword arguments.
    """

    def __init__(self, *args, binary: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        opts, first_input = binary_options(binary)
        for i, old in enumerate(self.pfn_layers):
            new = BinaryPFNLayer(old.linear.in_features,
                                 old.units if old.last_vfe else 2 * old.units,
                                 last_layer=old.last_vfe, mode=old.mode,
                                 binarize_input=first_input if i == 0 else True, **opts)
            new.norm = old.norm  # the norm layer as PillarFeatureNet built it
            self.pfn_layers[i] = new

    def binary_layers(self):
        return [m.linear for m in self.pfn_layers]
