"""SupportConv2d and SupportBN2d: a dense head's k x k convs computed where a sparse BEV map
makes their outputs differ from one constant.

Behind a sparsity-preserving 2D backbone and :class:`~.sparse_bev_neck.SparseBEVSECONDFPN`,
every BEV pixel outside the map's :class:`~.sparse_bev_neck.BEVSupport` holds the same
background vector. A stride-1 k x k conv (padding k // 2) then gives every output pixel whose
window sees background pixels only one and the same value, ``bias + sum_taps W_tap @ bg``;
only the pixels whose window reaches the support, or the zero padding (when the background
is not zero), need computing. :class:`SupportConv2d` multiplies those pixels' windows (one
gather, one GEMM), fills the rest of the map with that one value and attaches the new support
(the reached pixels) to its output, so the next such conv skips again (a CenterHead's shared
conv, and its task branches where their ``conv_cfg`` selects it too). The values equal
nn.Conv2d's. It is called as a module, so forward hooks (pruning masks, FLOPs counters,
calibration) see every call; ``flops_pairs`` gives a counter the pixels really multiplied.

A norm between two such convs makes a new tensor; :class:`SupportBN2d` (a BatchNorm2d) passes
the support on in eval mode. An in-place activation keeps it (the same tensor); the
background is read from the map itself, so that one changed in place is still right. In
training, without a support, or with another geometry (stride, dilation, groups, padding
other than k // 2), both run as their parent classes. Same arguments and state_dict keys as
nn.Conv2d and nn.BatchNorm2d: a dense checkpoint loads and computes the same outputs.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import nn

from .sparse_bev_neck import BEVSupport, attach_support, support_of


def background_of(x: torch.Tensor, active: torch.Tensor) -> Optional[torch.Tensor]:
    """The features (C, ) of the first pixel of ``x`` (N, C, H, W) outside ``active`` (N, H,
    W): every such pixel's, where ``active`` is a support of ``x``. None if every pixel is
    active. A copy, not a view: a support attached to ``x`` holds it, and a view of ``x``
    there would keep ``x`` alive through a reference the garbage collector cannot see."""
    outside = (~active).flatten().nonzero()
    if len(outside) == 0:
        return None
    b, rest = divmod(int(outside[0]), active.shape[1] * active.shape[2])
    y, xx = divmod(rest, active.shape[2])
    return x[b, :, y, xx].clone()


def reached_pixels(active: torch.Tensor, kernel_size, padding, border: bool) -> torch.Tensor:
    """(N, H, W) output pixels of a stride-1 conv (``padding`` = kernel // 2) whose window
    holds an ``active`` pixel, or, with ``border``, the zero padding."""
    (kh, kw), (ph, pw) = kernel_size, padding
    reached = F.max_pool2d(active[:, None].float(), (kh, kw), stride=1,
                           padding=(ph, pw))[:, 0] > 0
    if border:
        h, w = reached.shape[1:]
        reached[:, :ph] = True
        reached[:, max(h - ph, 0):] = True
        reached[:, :, :pw] = True
        reached[:, :, max(w - pw, 0):] = True
    return reached


@MODELS.register_module()
class SupportConv2d(nn.Conv2d):
    """nn.Conv2d computing, on a map with a BEVSupport, only the output pixels that differ
    from the background's output (see the module doc).

    Args:
        *args: nn.Conv2d's arguments.
        dense_above (float): fraction of output pixels to compute above which the dense conv
            runs instead (the same values; the support is still attached, nothing counted
            as skipped). 1.0 always runs sparse. Defaults to 0.8.
        **kwargs: nn.Conv2d's keyword arguments.
    """

    def __init__(self, *args, dense_above: float = 0.8, **kwargs):
        super().__init__(*args, **kwargs)
        self.dense_above = float(dense_above)
        self._last_pairs = None
        self.spatial_saving = 'none'  # of the last call: 'skipped' or 'none' (dense)

    def _window_geometry(self) -> bool:
        """Whether the conv is stride-1, undilated, ungrouped, zero-padded by k // 2."""
        return (self.stride == (1, 1) and self.dilation == (1, 1) and self.groups == 1
                and self.padding_mode == 'zeros' and not isinstance(self.padding, str)
                and all(k % 2 == 1 and p == k // 2
                        for k, p in zip(self.kernel_size, self.padding)))

    def background_output(self, bg: torch.Tensor) -> torch.Tensor:
        """(out_channels, ) the output at a pixel whose window holds ``bg`` everywhere."""
        out = self.weight.sum((2, 3)) @ bg
        return out + self.bias if self.bias is not None else out

    def _windows(self, x: torch.Tensor, support: BEVSupport):
        """(background vector or None, reached pixels, their indices (batch, row, col), their
        windows (pixels, kh * kw * C) or None where the dense conv runs), gathered once per
        map, geometry and in-place version of ``x``: the convs reading one map share them."""
        key = (x._version, self.kernel_size, self.padding, self.dense_above)
        if key in support.windows:
            return support.windows[key]
        bg = background_of(x, support.active)
        if bg is None:
            plan = (None, None, None, None)
        else:
            reached = reached_pixels(support.active, self.kernel_size, self.padding,
                                     border=bool(bg.any()))
            index = torch.nonzero(reached, as_tuple=True)
            windows = None
            if len(index[0]) <= self.dense_above * reached.numel():
                n, c, h, w = x.shape
                (kh, kw), (ph, pw) = self.kernel_size, self.padding
                # the map channels-last in a zero-padded buffer, each window's pixels as
                # row numbers of it (taps row-major): one gather
                padded = x.new_zeros(n, h + 2 * ph, w + 2 * pw, c)
                padded[:, ph:ph + h, pw:pw + w] = x.permute(0, 2, 3, 1)
                hp, wp = h + 2 * ph, w + 2 * pw
                taps = (torch.arange(kh, device=x.device).view(-1, 1) * wp
                        + torch.arange(kw, device=x.device).view(1, -1)).flatten()
                b, y, xx = index
                corner = b * (hp * wp) + y * wp + xx
                windows = padded.view(-1, c).index_select(
                    0, (corner[:, None] + taps).flatten()).view(len(b), kh * kw * c)
            plan = (bg, reached, index, windows)
        support.windows[key] = plan
        return plan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._last_pairs, self.spatial_saving = None, 'none'
        support = support_of(x)
        if support is None or self.training or not self._window_geometry():
            return super().forward(x)
        bg, reached, index, windows = self._windows(x, support)
        if bg is None:  # every pixel active
            return super().forward(x)
        bg_out = self.background_output(bg)
        if windows is None:  # too many pixels reached: the dense conv, the same values
            return attach_support(super().forward(x), BEVSupport(reached, bg_out))
        weight = self.weight.permute(0, 2, 3, 1).reshape(self.out_channels, -1)
        rows = windows @ weight.t()
        if self.bias is not None:
            rows = rows + self.bias
        n, _, h, w = x.shape
        out = bg_out.view(1, 1, 1, -1).expand(n, h, w, -1).contiguous()
        out[index] = rows
        kh, kw = self.kernel_size
        self._last_pairs = torch.full((kh * kw, ), len(rows), dtype=torch.long)
        self.spatial_saving = 'skipped'
        # channels-last memory (an NCHW view): the next conv gathers its windows as rows
        return attach_support(out.permute(0, 3, 1, 2), BEVSupport(reached, bg_out))

    def flops_pairs(self, inputs, output) -> torch.Tensor:
        """Per kernel offset: the output pixels the last call multiplied."""
        if self._last_pairs is not None:
            return self._last_pairs
        positions = output.shape[0] * output.shape[2] * output.shape[3]
        return torch.full((self.kernel_size[0] * self.kernel_size[1], ), positions,
                          dtype=torch.long)


@MODELS.register_module()
class SupportBN2d(nn.BatchNorm2d):
    """nn.BatchNorm2d that, in eval mode, passes its input's BEVSupport on to its output (a
    per-channel affine map keeps the pixels outside it equal). Same arguments as
    nn.BatchNorm2d."""
    _abbr_ = 'bn'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        support = support_of(x)
        if support is None or self.training:
            return y
        bg = background_of(y, support.active)
        return y if bg is None else attach_support(y, BEVSupport(support.active, bg))
