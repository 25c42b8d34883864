"""Sparse convs that skip the kernel offsets pruned away: the saving of offset-granularity
DM3D (``DM3DPruner(granularity='offset')``) as work really not done.

A sparse conv whose mask removed whole kernel offsets still runs every offset's gather-GEMM-
scatter in spconv. ``skip_pruned_offsets(model)`` swaps each such spconv conv for one that
runs spconv's own gather-GEMM-scatter on spconv's own rulebook with the removed offsets'
pair counts set to zero (spconv's loop skips an offset without pairs): no pair is decoded,
copied or re-encoded, and the removed offsets' gathers, GEMMs and scatters are not run. Same
weights and state_dict keys, same outputs (the removed offsets only ever added zeros). On CUDA
spconv's kernels do not loop per offset, so there the layers run spconv's full conv (the
saving is then counted only).
"""
import logging
from typing import List

import torch
from mmengine.logging import print_log
from spconv.core import ConvAlgo
from spconv.pytorch import SparseConv3d, SparseConvTensor, SubMConv3d
from spconv.pytorch import functional as Fsp
from spconv.pytorch.ops import get_conv_output_size

from ..cost.layouts import offset_view, spconv_default_layout
from ..sparse.native_rulebook import indice_data, loop_counts, native_pairs_available


def kept_offsets(conv: torch.nn.Module) -> torch.Tensor:
    """(K,) bool: kernel offsets of a sparse conv with any non-zero weight, in rulebook order
    (read through :func:`~dm3d_mm.cost.layouts.offset_view`, so either spconv layout)."""
    return (offset_view(conv).detach() != 0).any(1)


def skipping_counts(datas, kept: torch.Tensor, subm: bool) -> torch.Tensor:
    """(K,) int32 pair counts spconv's native loop runs: an offset's own count if it is kept,
    0 if removed (a submanifold centre: 0, it is computed apart)."""
    return loop_counts(datas, subm) * kept.to(datas.indice_pair_num.device)


class _OffsetSkipping:
    """Runs spconv's rulebook with the all-zero offsets' counts set to zero."""

    def _skip(self, x) -> bool:
        self._kept = kept_offsets(self)
        return bool(not self._kept.all()) and native_pairs_available(x.features)

    def _run(self, x, datas, num_out: int, subm: bool):
        counts = skipping_counts(datas, self._kept, subm)
        out = Fsp.indice_conv(x.features, self.weight, datas.indice_pairs, counts, num_out,
                              ConvAlgo.Native)
        centre = self._kept.numel() // 2
        if subm and self._kept[centre]:  # every site with itself
            w = offset_view(self)[centre].reshape(self.out_channels, self.in_channels)
            out = out + x.features @ w.t()
        return out if self.bias is None else out + self.bias


class OffsetSkippingSubMConv3d(_OffsetSkipping, SubMConv3d):
    """spconv's SubMConv3d computing only the pairs of its non-zero kernel offsets."""

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        if not self._skip(x):
            return super().forward(x)
        datas = indice_data(x, self, subm=True)
        return x.replace_feature(self._run(x, datas, x.indices.shape[0], subm=True))


class OffsetSkippingSparseConv3d(_OffsetSkipping, SparseConv3d):
    """spconv's SparseConv3d (same output sites) computing only the pairs of its non-zero
    kernel offsets."""

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        if not self._skip(x):
            return super().forward(x)
        datas = indice_data(x, self, subm=False)
        shape = get_conv_output_size(x.spatial_shape, self.kernel_size, self.stride,
                                     self.padding, self.dilation)
        indice_dict = dict(x.indice_dict)
        if self.indice_key is not None:  # as spconv's own layer keeps it (inverse convs)
            indice_dict[self.indice_key] = datas
        return SparseConvTensor(self._run(x, datas, datas.out_indices.shape[0], subm=False),
                                datas.out_indices, shape, x.batch_size,
                                indice_dict=indice_dict)


_SWAPS = {SubMConv3d: OffsetSkippingSubMConv3d, SparseConv3d: OffsetSkippingSparseConv3d}


def skip_pruned_offsets(model: torch.nn.Module) -> List[str]:
    """Swap, in place, every plain spconv SubMConv3d / SparseConv3d with a whole kernel
    offset of zeros for its offset-skipping twin (weights shared, keys unchanged); returns
    the names swapped. A conv in spconv's legacy weight layout is left as it is (logged)."""
    swapped = []
    for name, module in model.named_modules():
        cls = _SWAPS.get(type(module))
        if cls is None or bool(kept_offsets(module).all()):
            continue
        if not spconv_default_layout(module):  # the twins run the default layout
            print_log(f'skip_pruned_offsets: {name} holds the legacy spconv weight layout '
                      '(*kernel, in, out): left as a plain spconv conv', logger='current',
                      level=logging.WARNING)
            continue
        module.__class__ = cls  # the same object: parameters, hooks, settings kept
        swapped.append(name)
    return swapped
