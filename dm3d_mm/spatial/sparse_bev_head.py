"""SparseBEVAnchor3DHead: mmdet3d's Anchor3DHead whose 1x1 convs compute the active BEV
pixels only.

Anchor3DHead's convs (classification, box, direction) are 1x1: each output pixel depends on
its own input pixel. When the input map carries a :class:`~.sparse_bev_neck.BEVSupport`
(written by :class:`~.sparse_bev_neck.SparseBEVSECONDFPN`: every pixel outside ``active``
holds the same background vector), the convs multiply the active pixels' rows only (as one
GEMM, each conv's call told to any FLOPs counter counting it; with other forward hooks
attached, such as pruning masks, each conv is called as a module on the rows laid out as a
batch of K 1x1 images, so the hooks see the pixels really multiplied), the background's
output is computed once and fills the rest of the maps: the same values as the dense convs.
Without a support or in training it runs Anchor3DHead's own forward. Same arguments and
state_dict keys as Anchor3DHead.
"""
from typing import List, Optional, Tuple

import torch
from mmdet3d.models.dense_heads import Anchor3DHead
from mmdet3d.registry import MODELS

from ..cost.counter import count_call, only_counting_hooks
from .sparse_bev_neck import support_of


def pointwise_convs_on_support(convs: List[torch.nn.Conv2d], x: torch.Tensor,
                               active: torch.Tensor, background: torch.Tensor
                               ) -> List[torch.Tensor]:
    """Outputs of the 1x1 ``convs`` on ``x`` (N, C, H, W), computed at the ``active`` pixels
    (N, H, W) and once for the ``background`` vector that every other pixel holds."""
    n, c, h, w = x.shape
    b, y, xx = torch.nonzero(active, as_tuple=True)
    rows = x.permute(0, 2, 3, 1)[b, y, xx]
    if len(rows) and not all(only_counting_hooks(conv) for conv in convs):
        # each conv called as a module on the rows as a batch of K 1x1 images: hooks
        # (pruning masks) see the pixels really multiplied (oneDNN runs this 2-5x slower
        # than one GEMM, hence only when hooked by more than a FLOPs counter; a (1, C, 1, K)
        # image runs slower still)
        pixels = rows.reshape(-1, c, 1, 1)
        outs_rows = [conv(pixels).flatten(1) for conv in convs]
    else:  # the three convs as one GEMM
        weight = torch.cat([conv.weight.flatten(1) for conv in convs])
        bias = torch.cat([conv.bias if conv.bias is not None
                          else weight.new_zeros(conv.out_channels) for conv in convs])
        outs_rows = [torch.addmm(bias, rows, weight.t())]
        for conv in convs:  # what each conv multiplied, to any FLOPs counter counting it
            count_call(conv, torch.tensor([len(rows)]), len(rows), len(rows),
                       len(rows) * conv.out_channels)
    # the background's output once, functionally (one pixel)
    outs, start = [], 0
    bgs = [torch.nn.functional.conv2d(background.view(1, c, 1, 1), conv.weight, conv.bias
                                      ).flatten() for conv in convs]
    out = torch.cat(bgs).view(1, 1, 1, -1).expand(n, h, w, -1).contiguous()
    out[b, y, xx] = torch.cat(outs_rows, 1)
    # one channels-last map for all convs: the head's decoding permutes to channels-last
    for conv in convs:
        outs.append(out[..., start:start + conv.out_channels].permute(0, 3, 1, 2))
        start += conv.out_channels
    return outs


@MODELS.register_module()
class SparseBEVAnchor3DHead(Anchor3DHead):
    """Anchor3DHead computing its 1x1 convs over the active BEV pixels (see the module doc).

    Args:
        *args: Anchor3DHead's arguments.
        **kwargs: Anchor3DHead's keyword arguments.
    """

    def forward_single(self, x: torch.Tensor
                       ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        support = support_of(x)
        if support is None or self.training:
            return super().forward_single(x)
        convs = [self.conv_cls, self.conv_reg]
        if self.use_direction_classifier:
            convs.append(self.conv_dir_cls)
        if any(c.kernel_size != (1, 1) or c.groups != 1 for c in convs):
            return super().forward_single(x)
        outs = pointwise_convs_on_support(convs, x, support.active, support.background)
        return outs[0], outs[1], (outs[2] if self.use_direction_classifier else None)
