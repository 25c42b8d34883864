"""Binarised voxel feature encoder: mmdet3d's HardVFE / VFELayer with BinaryLinear layers,
EMA max pooling and LSR, same arguments and state_dict keys (plus the LSR scales)."""
from typing import Optional

import torch
from mmdet3d.models.voxel_encoders import HardVFE
from mmdet3d.models.voxel_encoders.utils import VFELayer
from mmdet3d.registry import MODELS
from torch import Tensor

from .ema import ema_max
from .layers import BinaryLinear, binary_options


class BinaryVFELayer(VFELayer):
    """VFELayer with a BinaryLinear (same ``linear.weight`` key).

    A binarised layer that concatenates its pooled max to the point-wise features (it feeds
    the next binary layer) drops the ReLU and shifts the max by EMA's d*, as
    :class:`BinaryPFNLayer` does; a layer that returns the pooled voxel features keeps
    mmdet3d's ReLU and max (its output goes to a full-precision middle encoder).

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        norm_cfg (dict): norm layer config. Defaults to BN1d as mmdet3d's.
        max_out (bool): pool the points of a voxel. Defaults to True.
        cat_max (bool): concatenate the pooled features to the point-wise ones. Defaults
            to True.
        binarize_input (bool): binarise this layer's inputs. Defaults to True.
        ema (bool): Entropy-Maximising Aggregation on a concatenating layer. Defaults to
            True.
        lsr (bool): Layer-wise Scale Recovery. Defaults to True.
        enabled (bool): False: mmdet3d's full-precision VFELayer exactly. Defaults to True.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 norm_cfg: Optional[dict] = dict(type='BN1d', eps=1e-3, momentum=0.01),
                 max_out: bool = True, cat_max: bool = True, binarize_input: bool = True,
                 ema: bool = True, lsr: bool = True, enabled: bool = True):
        super().__init__(in_channels, out_channels, norm_cfg, max_out, cat_max)
        self.linear = BinaryLinear(in_channels, out_channels, bias=False,
                                   binarize_input=binarize_input, lsr=lsr, enabled=enabled)
        self.ema = ema

    def forward(self, inputs: Tensor) -> Tensor:
        if not self.linear.enabled or not (self.max_out and self.cat_max):
            return super().forward(inputs)
        x = self.linear(inputs)
        x = self.norm(x.permute(0, 2, 1).contiguous()).permute(0, 2, 1).contiguous()
        pooled = ema_max(x, self.ema)
        return torch.cat([x, pooled.repeat(1, inputs.shape[1], 1)], dim=2)


@MODELS.register_module()
class BinaryHardVFE(HardVFE):
    """HardVFE whose VFE layers are BinaryVFELayers, switched on in a config:

        voxel_encoder=dict(type='BinaryHardVFE', ..., binary=dict(ema=True, lsr=True))

    As in :class:`BinaryPillarFeatureNet`, the first layer's inputs (the point decorations)
    stay full precision unless ``binarize_first_input``.

    Args:
        *args: HardVFE's arguments.
        binary (dict, optional): ``ema``, ``lsr``, ``enabled`` (False: full precision, equal
            to HardVFE) and ``binarize_first_input``. Defaults to all on, first input full
            precision.
        **kwargs: HardVFE's keyword arguments.
    """

    def __init__(self, *args, binary: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        opts, first_input = binary_options(binary)
        for i, old in enumerate(self.vfe_layers):
            new = BinaryVFELayer(old.linear.in_features, old.linear.out_features,
                                 max_out=old.max_out, cat_max=old.cat_max,
                                 binarize_input=first_input if i == 0 else True, **opts)
            new.norm = old.norm  # the norm layer as HardVFE built it
            self.vfe_layers[i] = new

    def binary_layers(self):
        return [m.linear for m in self.vfe_layers]
