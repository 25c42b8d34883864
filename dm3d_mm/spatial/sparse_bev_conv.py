"""Conv2d over a sparse BEV map that computes the active pixels only.

Outputs exist where the input is active (max-pooled by the stride), as a submanifold conv's
do, so pruned pixels stay exactly zero through the 2D backbone. The work is a gather-GEMM-
scatter over the (active input, active output) pixel pairs: inactive pixels are never
multiplied, and the FLOPs counter sees those same pairs (``flops_pairs``). Weights and
state_dict keys are nn.Conv2d's, so a dense checkpoint loads unchanged.

On CPU the gather-GEMM-scatter beats oneDNN's dense conv only on sparse maps (measured on
the demo's 2D backbone shapes, one thread: 0.3-0.5x of dense at 25 % active pixels, 1.1-1.4x
at 50 %, up to 8x at 100 %), so above ``dense_above`` active input pixels the layer runs the
dense conv and masks it: same values, same counted pairs, but that call's saving is then
counted only, and ``spatial_saving`` says so to the FLOPs report.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import nn

from ..errors import UserError
from ..sparse.gather_conv import FlatRulebook, conv_from_rulebook
from .active_pixels import (
    active_count,
    active_index,
    active_pixels,
    known_count,
    live_mask,
    nonzero_pixels,
    remember_count,
    row_pixels,
)


def bev_rulebook(mask_in: torch.Tensor, mask_out: torch.Tensor, kernel_size, stride, padding,
                 dilation, alive: Optional[torch.Tensor] = None) -> FlatRulebook:
    """Pairs (active input row, active output row) per kernel offset (row-major offsets);
    rows number the active pixels of ``mask_in`` / ``mask_out`` (N, H, W) in row-major order.
    Enumerated from the output pixels, or, where only the input's active count is known on
    the host (a strided conv's pooled output), from the input pixels, reading the output
    count together with the pairs per offset (one wait, not two). ``alive``: flags of
    ``mask_in``'s rows (its count known); only the flagged ones make pairs (from the input
    pixels)."""
    n, h, w = mask_in.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    dev = mask_in.device
    if alive is not None or (known_count(mask_out) is None and known_count(mask_in) is not None):
        return _bev_rulebook_from_inputs(mask_in, mask_out, kernel_size, stride, padding,
                                         dilation, alive)
    ids = torch.full((n, h + 2 * ph + sh + (kh - 1) * dh, w + 2 * pw + sw + (kw - 1) * dw),
                     -1, dtype=torch.long, device=dev)
    # each active input pixel's row (row-major rank among the active ones), -1 elsewhere:
    # a cumulative sum instead of a boolean-mask write, so no wait for the active count
    flat = mask_in.reshape(-1)
    rank = torch.cumsum(flat.long(), 0) - 1
    ids[:, ph:ph + h, pw:pw + w] = torch.where(flat, rank, -1).view(n, h, w)
    b, yo, xo = active_pixels(mask_out)
    # every offset's input row of every active output pixel at once, (K, outputs); its hits
    # in offset-major order are the pairs offset by offset (one nonzero for all of them)
    ky, kx = torch.meshgrid(torch.arange(kh, device=dev), torch.arange(kw, device=dev),
                            indexing='ij')
    ky, kx = ky.reshape(-1, 1), kx.reshape(-1, 1)
    rows = ids[b[None], yo[None] * sh + ky * dh, xo[None] * sw + kx * dw]
    # the pairs per offset read once; their total sizes the pairs' selection (no second wait)
    hit = rows >= 0
    sizes = hit.sum(1).tolist()
    offset, out_rows = torch.nonzero_static(hit, size=sum(sizes)).unbind(1)
    remember_count(mask_out, len(b))
    return FlatRulebook(rows[offset, out_rows], out_rows, offset, kh * kw, num_out=len(b),
                        sizes=sizes)


def _bev_rulebook_from_inputs(mask_in, mask_out, kernel_size, stride, padding,
                              dilation, alive=None) -> FlatRulebook:
    """:func:`bev_rulebook` enumerated from the active input pixels: each reaches, per
    offset, at most one output pixel ((y + p - k * d) / s where that divides); within an
    offset the pairs are in input order (each output row still gets one pair per offset)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    dev = mask_in.device
    ho, wo = mask_out.shape[1:]
    b, yi, xi = active_pixels(mask_in)
    flat = mask_out.reshape(-1)
    out_ids = torch.where(flat, torch.cumsum(flat.long(), 0) - 1, -1).view(mask_out.shape)
    ky, kx = torch.meshgrid(torch.arange(kh, device=dev), torch.arange(kw, device=dev),
                            indexing='ij')
    ny = yi[None] + ph - ky.reshape(-1, 1) * dh  # (K, inputs): stride multiples of yo
    nx = xi[None] + pw - kx.reshape(-1, 1) * dw
    yo, xo = torch.div(ny, sh, rounding_mode='floor'), torch.div(nx, sw, rounding_mode='floor')
    valid = (ny >= 0) & (nx >= 0) & (ny % sh == 0) & (nx % sw == 0) & (yo < ho) & (xo < wo)
    if alive is not None:
        valid &= alive[None]
    rows = torch.where(valid, out_ids[b[None].expand_as(yo), yo.clamp(0, ho - 1),
                                      xo.clamp(0, wo - 1)], -1)
    hit = rows >= 0
    read = torch.cat([hit.sum(1), flat.sum().view(1)]).tolist()  # the one wait
    sizes, num_out = read[:-1], read[-1]
    offset, in_rows = torch.nonzero_static(hit, size=sum(sizes)).unbind(1)
    remember_count(mask_out, num_out)
    return FlatRulebook(in_rows, rows[offset, in_rows], offset, kh * kw, num_out=num_out,
                        sizes=sizes)


@MODELS.register_module()
class SparseBEVConv2d(nn.Conv2d):
    """nn.Conv2d computed at the active output pixels from the active input pixels only.

    A submanifold conv (the default) makes an output pixel active when any input pixel of its
    stride cell is (for stride 1: the same pixels as the input); a regular one when its window
    reaches any active input pixel, so the active set grows by the kernel's reach.

    Args:
        *args: nn.Conv2d's arguments (groups=1, numeric zero padding).
        dense_above (float): fraction of active input pixels above which the dense conv
            (masked) runs instead of the gather-GEMM. 1.0 always runs sparse. Defaults to 0.4.
        submanifold (bool): outputs at the input's active pixels (pooled by the stride) only;
            False: wherever the window reaches one. Defaults to True.
        **kwargs: nn.Conv2d's keyword arguments.
    """

    def __init__(self, *args, dense_above: float = 0.4, submanifold: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if self.groups != 1 or self.padding_mode != 'zeros' or isinstance(self.padding, str):
            raise UserError('SparseBEVConv2d supports groups=1 and numeric zero padding only')
        self.dense_above = float(dense_above)
        self.submanifold = bool(submanifold)
        self._last_pairs = None
        self.spatial_saving = 'skipped'  # of the last call: 'skipped' or 'counted only'

    def _out_mask(self, mask: torch.Tensor) -> torch.Tensor:
        if not self.submanifold:
            return F.max_pool2d(mask, self.kernel_size, self.stride, self.padding, self.dilation)
        if self.stride == (1, 1):
            return mask
        return F.max_pool2d(mask, kernel_size=self.stride, stride=self.stride,
                            ceil_mode=True)

    def output_hw(self, h: int, w: int) -> Tuple[int, int]:
        return tuple((s + 2 * p - d * (k - 1) - 1) // st + 1 for s, p, d, k, st in zip(
            (h, w), self.padding, self.dilation, self.kernel_size, self.stride))

    # the last rulebook built, shared by every layer: the stride-1 convs of a backbone stage
    # see the same active pixels, so all but the first reuse it (checked, not assumed)
    _shared = None

    def _active_out(self, mask_in: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(N, Ho, Wo) active output pixels of the active input pixels ``mask_in``."""
        if self.keeps_pixels(mask_in.shape[1:]):
            return mask_in  # the same pixels: the same mask object, so later layers see it
        ho, wo = self.output_hw(*x.shape[-2:])
        return self._out_mask(mask_in[:, None].to(x.dtype))[:, 0, :ho, :wo] > 0

    def _rulebook(self, x: torch.Tensor, mask_in: torch.Tensor, compare: bool = True):
        geometry = (self.kernel_size, self.stride, self.padding, self.dilation)
        key = (*geometry, self.submanifold)
        last = SparseBEVConv2d._shared
        if last is not None and last[0] == key and (last[1] is mask_in or (
                compare and last[1].shape == mask_in.shape
                and last[1].device == mask_in.device and torch.equal(last[1], mask_in))):
            return last[2:]
        mask_out = self._active_out(mask_in, x)
        book = bev_rulebook(mask_in, mask_out, *geometry)
        SparseBEVConv2d._shared = (key, mask_in, mask_out, book)
        return mask_out, book

    def runs_sparse(self, mask_in: torch.Tensor) -> bool:
        """Whether a call on the active pixels ``mask_in`` (N, H, W) takes the sparse path
        (its density read once per mask, and not at all where its count is known)."""
        return active_count(mask_in) / max(mask_in.numel(), 1) <= self.dense_above

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask_in = nonzero_pixels(x)
        if not self.runs_sparse(mask_in):
            # the pairs are counted from the input if a FLOPs counter asks (flops_pairs)
            self.spatial_saving, self._last_pairs = 'counted only', None
            return super().forward(x) * self._active_out(mask_in, x)[:, None].to(x.dtype)
        out, mask_out = self.forward_rows(bev_rows(x, mask_in), mask_in, x.shape)
        return rows_to_bev(out, mask_out)

    def keeps_pixels(self, hw) -> bool:
        """Whether the active output pixels are the input's (stride 1, submanifold) on an
        input of height and width ``hw``."""
        return self.submanifold and self.stride == (1, 1) and \
            self.output_hw(*hw) == tuple(hw)

    def forward_rows(self, feats: torch.Tensor, mask_in: torch.Tensor, shape,
                     compare_masks: bool = True, alive: Optional[torch.Tensor] = None):
        """The sparse path on feature rows: ``feats`` (active pixels, C) in the row-major
        order of ``mask_in`` (N, H, W) of an input of ``shape`` (N, C, H, W) -> (output rows,
        active output mask). Runs the sparse path whatever the density. ``compare_masks``:
        reuse the last rulebook also for an equal mask that is another object (a comparison
        the host waits for); a caller that hands each mask on as one object passes False.
        ``alive``: the rows that are non-zero (the others are zero rows the checked path
        would not have): where the conv keeps the pixels, the output rows are ``mask_in``'s
        (the dead ones for the caller to zero); else only the live rows make pairs and the
        active outputs are those of the live pixels."""
        probe = feats.new_empty((shape[0], 0, *shape[2:]))  # shape and dtype only, no data
        if alive is not None and not self.keeps_pixels(shape[2:]):
            geometry = (self.kernel_size, self.stride, self.padding, self.dilation)
            mask_out = self._active_out(live_mask(mask_in, alive), probe)
            book = bev_rulebook(mask_in, mask_out, *geometry, alive=alive)
        else:
            mask_out, book = self._rulebook(probe, mask_in, compare_masks)
        self._last_pairs = torch.tensor(book.host_counts())
        self.spatial_saving = 'skipped'
        kh, kw = self.kernel_size
        weight = self.weight.permute(2, 3, 1, 0).reshape(kh * kw, self.in_channels,
                                                         self.out_channels)
        num_out = book.num_out if book.num_out is not None else int(mask_out.sum())
        out = conv_from_rulebook(feats, weight, book, num_out)
        if self.bias is not None:
            out = out + self.bias
        return out, mask_out

    @property
    def is_pointwise(self) -> bool:
        """Whether the conv is 1x1, stride 1, unpadded: each output pixel is its input
        pixel's row times the weight."""
        return (self.kernel_size == (1, 1) and self.stride == (1, 1)
                and self.padding == (0, 0))

    def blocks(self, x: torch.Tensor):
        """A pointwise conv's rows at the active input pixels of ``x`` (N, C, H, W), as
        :meth:`SparseBEVDeconv2d.blocks` gives them: (rows (active, out_channels) without the
        bias, their pixels as index tensors (batch, row, col))."""
        if not self.is_pointwise:
            raise ValueError(f'blocks() needs a pointwise conv, not kernel {self.kernel_size} '
                             f'stride {self.stride} padding {self.padding}')
        mask = row_pixels(x)  # a zero row gives zero, as an inactive pixel does
        index = active_pixels(mask)
        rows = bev_rows(x, mask) @ self.weight.flatten(1).t()
        self._last_pairs = torch.tensor([len(rows)])
        self.spatial_saving = 'skipped'
        return rows, index

    def flops_pairs(self, inputs, output) -> torch.Tensor:
        """The pairs the last forward multiplied, per kernel offset."""
        if self._last_pairs is None:
            x = inputs[0]
            return self._rulebook(x, (x != 0).any(1))[1].counts().cpu()
        return self._last_pairs


def bev_rows(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(active pixels, C) feature rows of a BEV map (N, C, H, W), row-major over ``mask``."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]).index_select(0, active_index(mask))


def rows_to_bev(rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The BEV map (N, C, H, W) holding ``rows`` at ``mask`` (N, H, W) and zeros elsewhere."""
    remember_count(mask, len(rows))
    y = rows.new_zeros(mask.numel(), rows.shape[1])
    y.index_copy_(0, active_index(mask), rows)
    return y.view(*mask.shape, rows.shape[1]).permute(0, 3, 1, 2)


@MODELS.register_module()
class SparseBEVDeconv2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d with kernel == stride (SECONDFPN's upsampling) computed from the
    active input pixels only: one GEMM over them, each writing its own output block.

    With kernel == stride the blocks do not overlap, so an inactive (all-zero) input pixel
    gives a block holding just the bias: the output equals the dense layer's everywhere,
    and a norm after it (even one with a shift) sees the same map. Same arguments and
    state_dict keys as nn.ConvTranspose2d (stride == kernel_size, no padding, groups=1).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.kernel_size != self.stride or any(self.padding) or any(self.output_padding) \
                or self.groups != 1 or self.dilation != (1, 1):
            raise UserError('SparseBEVDeconv2d needs kernel_size == stride, no padding, '
                             'groups=1 and dilation 1')
        self.spatial_saving = 'skipped'
        self._last_pairs = None

    def blocks(self, x: torch.Tensor):
        """The upsampled rows of the active input pixels of ``x`` (N, C, H, W): (rows
        (active * kh * kw, out_channels) without the bias, their output pixels as index
        tensors (batch, row, col) into the (N, H * kh, W * kw) output grid)."""
        kh, kw = self.kernel_size
        mask = row_pixels(x)  # a zero row's block is the bias, an inactive pixel's
        b, y, xx = active_pixels(mask)  # the rows' pixels, row-major
        feats = bev_rows(x, mask)  # (active, C)
        # columns ordered (kh, kw, out): row (pixel, i, j) of the product is the output
        # pixel (y * kh + i, x * kw + j)
        weight = self.weight.permute(0, 2, 3, 1).reshape(x.shape[1], -1)
        rows = (feats @ weight).view(-1, self.out_channels)
        self._last_pairs = torch.full((kh * kw, ), len(feats), dtype=torch.long)
        i = torch.arange(kh, device=x.device).view(1, kh, 1)
        j = torch.arange(kw, device=x.device).view(1, 1, kw)
        oy = ((y * kh).view(-1, 1, 1) + i).expand(-1, kh, kw).reshape(-1)
        ox = ((xx * kw).view(-1, 1, 1) + j).expand(-1, kh, kw).reshape(-1)
        ob = b.view(-1, 1, 1).expand(-1, kh, kw).reshape(-1)
        return rows, (ob, oy, ox)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        kh, kw = self.kernel_size
        rows, (ob, oy, ox) = self.blocks(x)
        # written into an NCHW map filled with the bias (what the dense layer gives an
        # inactive pixel's block)
        size = (n, self.out_channels, h * kh, w * kw)
        if self.bias is not None:
            out = self.bias.view(1, -1, 1, 1).expand(size).contiguous()
            rows = rows + self.bias
        else:
            out = x.new_zeros(size)
        out.permute(0, 2, 3, 1)[ob, oy, ox] = rows
        return out

    def flops_pairs(self, inputs, output) -> torch.Tensor:
        """Active input pixels, once per kernel offset (what the last forward multiplied)."""
        if self._last_pairs is None:
            kh, kw = self.kernel_size
            active = int((inputs[0] != 0).any(1).sum())
            return torch.full((kh * kw, ), active, dtype=torch.long)
        return self._last_pairs
