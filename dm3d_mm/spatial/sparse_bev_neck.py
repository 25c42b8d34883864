"""SparseBEVSECONDFPN: mmdet3d's SECONDFPN whose upsampling blocks compute the active BEV
pixels only, and that tells the head which output pixels hold the constant background.

Behind a sparsity-preserving 2D backbone (Ada3D) most BEV pixels are exactly zero. A deblock
(SparseBEVDeconv2d with kernel == stride, or for an unstrided branch built as a conv
(``use_conv_for_no_stride``, CenterPoint's) a pointwise SparseBEVConv2d without bias; then a
BatchNorm, a ReLU) maps every inactive input pixel to one constant vector, ReLU(BN(bias)),
the same at every inactive pixel. In eval mode this neck computes the deblocks on the active
pixels' rows only (the BN in its inference form, a per-channel affine map), fills the rest of
the output with that constant (the map is channels-last in memory, an NCHW view, so rows
scatter and gather contiguously), and attaches a :class:`BEVSupport` (the output pixels where
any branch is active, and the background vector) to the output map, so that a head of 1x1
convs (:class:`SparseBEVAnchor3DHead`) computes the active pixels only and writes its
background output once, and a head of k x k convs (:class:`~.support_conv.SupportConv2d`) the
pixels whose windows reach them. The values equal SECONDFPN's.

In training, or with deblocks of another form, it runs SECONDFPN's own forward (a BN in
training mode needs the whole map for its batch statistics; no support). A FLOPs counter is
told of every call the rows make (the upsampling layer's pairs, norm and activation work over the
rows); with other forward hooks attached (pruning masks, calibration) it runs SECONDFPN's
forward, so that every layer is called as a module, and attaches the support computed from
its inputs. Same arguments and state_dict keys as SECONDFPN.
"""
from dataclasses import dataclass, field
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmdet3d.models.necks import SECONDFPN
from mmdet3d.registry import MODELS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..cost.counter import count_call, count_elementwise, only_counting_hooks
from .sparse_bev_conv import SparseBEVConv2d, SparseBEVDeconv2d


@dataclass
class BEVSupport:
    """Which pixels of a BEV map (N, C, H, W) differ from its background.

    Args:
        active (torch.Tensor): (N, H, W) bool; outside it every pixel's features equal
            ``background``.
        background (torch.Tensor): (C, ) the features of every inactive pixel.
        windows (dict): what the convs reading this map gathered from it, kept for the next
            conv of the same geometry (a CenterHead's task branches all read one map; see
            :class:`~.support_conv.SupportConv2d`). Defaults to empty.
    """
    active: torch.Tensor
    background: torch.Tensor
    windows: dict = field(default_factory=dict, repr=False, compare=False)


def attach_support(x: torch.Tensor, support: BEVSupport) -> torch.Tensor:
    """Record ``support`` on the map ``x`` itself (an attribute of that tensor object: any op
    that makes a new tensor drops it, and its consumers then run dense)."""
    x.bev_support = support
    return x


def support_of(x: torch.Tensor) -> Optional[BEVSupport]:
    """The BEVSupport attached to ``x`` if it still describes ``x``'s shape, else None."""
    s = getattr(x, 'bev_support', None)
    if s is None or tuple(s.active.shape) != (x.shape[0], *x.shape[2:]) \
            or s.background.numel() != x.shape[1]:
        return None
    return s


def _affine(norm: _BatchNorm):
    """(scale, shift) of a BatchNorm in eval mode as a per-channel affine map."""
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    return scale, shift


def _row_form(deblock: nn.Module):
    """(upsampling layer, norm or None, relu or None) when ``deblock`` is SparseBEVDeconv2d
    or a pointwise SparseBEVConv2d (an unstrided branch) [-> BN] [-> ReLU], else None."""
    layers = list(deblock) if isinstance(deblock, nn.Sequential) else [deblock]
    if not layers or not (isinstance(layers[0], SparseBEVDeconv2d) or (
            isinstance(layers[0], SparseBEVConv2d) and layers[0].is_pointwise)):
        return None
    rest, norm, relu = layers[1:], None, None
    if rest and isinstance(rest[0], _BatchNorm):
        norm, rest = rest[0], rest[1:]
    if rest and isinstance(rest[0], nn.ReLU):
        relu, rest = rest[0], rest[1:]
    return None if rest else (layers[0], norm, relu)


@MODELS.register_module()
class SparseBEVSECONDFPN(SECONDFPN):
    """SECONDFPN computing its upsampling over the active BEV pixels (see the module doc).

    Args:
        *args: SECONDFPN's arguments; ``upsample_cfg=dict(type='SparseBEVDeconv2d',
            bias=False)`` makes the row path apply to the upsampling blocks.
        **kwargs: SECONDFPN's keyword arguments.
    """

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        forms = [_row_form(d) for d in self.deblocks]
        if self.training or any(f is None for f in forms):
            return super().forward(x)
        if len(x) != len(self.deblocks):
            raise ValueError(f'{type(self).__name__} got {len(x)} feature maps for '
                             f'{len(self.deblocks)} deblocks')
        if not only_counting_hooks(self):  # every layer a module call; support from inputs
            out, = super().forward(x)
            actives = [_upsampled_active(xi, form[0]) for xi, form in zip(x, forms)]
            if any(a.shape != actives[0].shape for a in actives):
                return [out]
            active = torch.stack(actives).any(0)
            background = torch.cat([_background(*form, out) for form in forms])
            return [attach_support(out, BEVSupport(active, background))]
        branches = [self._rows(xi, *form) for xi, form in zip(x, forms)]
        n = x[0].shape[0]
        hw = branches[0][2]
        if any(b[2] != hw for b in branches):
            return super().forward(x)
        background = torch.cat([b[3] for b in branches])
        # channels-last memory (an NCHW view): rows scatter and gather contiguously
        nhwc = background.view(1, 1, 1, -1).expand(n, *hw, -1).contiguous()
        out = nhwc.permute(0, 3, 1, 2)
        active = torch.zeros(n, *hw, dtype=torch.bool, device=out.device)
        start = 0
        for rows, index, _, bg in branches:
            nhwc[index[0], index[1], index[2], start:start + len(bg)] = rows
            active[index] = True
            start += len(bg)
        return [attach_support(out, BEVSupport(active, background))]

    @staticmethod
    def _rows(x, upsample, norm, relu):
        """(rows, their output pixels, output (H, W), background vector) of one deblock."""
        rows, index = upsample.blocks(x)
        active = upsample._last_pairs[0]  # the active input pixels, once per kernel offset
        count_call(upsample, upsample._last_pairs, active, len(rows), rows.numel())
        if upsample.bias is not None:
            rows = rows + upsample.bias
        if norm is not None:
            scale, shift = _affine(norm)
            rows = rows * scale + shift
            count_elementwise(norm, rows.numel())
        if relu is not None:
            rows = F.relu(rows)
            count_elementwise(relu, rows.numel())
        kh, kw = upsample.kernel_size
        return rows, index, (x.shape[2] * kh, x.shape[3] * kw), _background(upsample, norm,
                                                                            relu, rows)


def _background(upsample, norm, relu, like: torch.Tensor) -> torch.Tensor:
    """The deblock's output (C, ) at an inactive input pixel (eval mode)."""
    bg = upsample.bias if upsample.bias is not None else like.new_zeros(upsample.out_channels)
    if norm is not None:
        scale, shift = _affine(norm)
        bg = bg * scale + shift
    return F.relu(bg) if relu is not None else bg


def _upsampled_active(x: torch.Tensor, upsample) -> torch.Tensor:
    """(N, H * kh, W * kw): the output pixels of the active input pixels of ``x``."""
    kh, kw = upsample.kernel_size
    return (x != 0).any(1).repeat_interleave(kh, 1).repeat_interleave(kw, 2)
