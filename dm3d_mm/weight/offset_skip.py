"""Sparse convs that skip the kernel offsets pruned away: the saving of offset-granularity
DM3D (``DM3DPruner(granularity='offset')``) as work really not done.

A sparse conv whose mask removed whole kernel offsets still runs every offset's gather-GEMM-
scatter in spconv. ``skip_pruned_offsets(model)`` swaps each such spconv conv for one that
runs spconv's own gather-GEMM-scatter on the rulebook *without* the removed offsets' pairs:
same weights and state_dict keys, same outputs (the removed offsets only ever added zeros).
The rulebook is decoded from spconv's CPU pair generation, so on CUDA the layers run spconv's
full conv (the saving is then counted only).
"""
from typing import List

import torch
from spconv.pytorch import SparseConv3d, SparseConvTensor, SubMConv3d
from spconv.pytorch.ops import get_conv_output_size

from ..sparse.gather_conv import spconv_conv_from_rulebook
from ..sparse.native_rulebook import native_pairs_available, regular_rulebook, subm_rulebook


def kept_offsets(weight: torch.Tensor) -> torch.Tensor:
    """(K,) bool: kernel offsets of an spconv weight (out, kz, ky, kx, in) with any non-zero
    entry, in rulebook order."""
    return (weight.detach() != 0).flatten(1, -2).any(0).any(-1)


class _OffsetSkipping:
    """Runs the rulebook without the offsets whose weights are all zero."""

    def _skip(self, x) -> bool:
        self._kept = kept_offsets(self.weight)
        return bool(not self._kept.all()) and native_pairs_available(x.features)

    def _run(self, x, book, num_out):
        out = spconv_conv_from_rulebook(x.features, self.weight, book.keep_offsets(self._kept),
                                        num_out)
        return out if self.bias is None else out + self.bias


class OffsetSkippingSubMConv3d(_OffsetSkipping, SubMConv3d):
    """spconv's SubMConv3d computing only the pairs of its non-zero kernel offsets."""

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        if not self._skip(x):
            return super().forward(x)
        return x.replace_feature(self._run(x, subm_rulebook(x, self), x.indices.shape[0]))


class OffsetSkippingSparseConv3d(_OffsetSkipping, SparseConv3d):
    """spconv's SparseConv3d (same output sites) computing only the pairs of its non-zero
    kernel offsets."""

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        if not self._skip(x):
            return super().forward(x)
        sites, book = regular_rulebook(x, self)
        shape = get_conv_output_size(x.spatial_shape, self.kernel_size, self.stride,
                                     self.padding, self.dilation)
        return SparseConvTensor(self._run(x, book, sites.shape[0]), sites, shape,
                                x.batch_size, indice_dict=dict(x.indice_dict))


_SWAPS = {SubMConv3d: OffsetSkippingSubMConv3d, SparseConv3d: OffsetSkippingSparseConv3d}


def skip_pruned_offsets(model: torch.nn.Module) -> List[str]:
    """Swap, in place, every plain spconv SubMConv3d / SparseConv3d with a whole kernel
    offset of zeros for its offset-skipping twin (weights shared, keys unchanged); returns
    the names swapped."""
    swapped = []
    for name, module in model.named_modules():
        cls = _SWAPS.get(type(module))
        if cls is not None and not bool(kept_offsets(module.weight).all()):
            module.__class__ = cls  # the same object: parameters, hooks, settings kept
            swapped.append(name)
    return swapped
