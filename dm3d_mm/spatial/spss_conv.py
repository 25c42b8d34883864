"""SPSS-Conv style spatially pruned sparse convolutions that compute only what they keep.

``SPSSSubMConv3d``: outputs are computed at the important voxels only; the pruned voxels pass
their input through (so in and out channels must match). ``SPSSSparseConv3d``: a strided
conv whose important voxels dilate to all their output sites while each unimportant voxel
keeps only its own site. Both build a rulebook over the computed outputs alone and report
its pair counts to the FLOPs counter through ``flops_pairs``. With ``prune_ratio=0`` they are
exactly spconv's SubMConv3d / SparseConv3d (same forward, same state_dict keys).
``SPSSBlock`` lets pruned voxels skip a whole conv-norm-act block instead of the conv alone.
"""
import torch
from spconv.pytorch import SparseConv3d, SparseConvTensor, SparseSequential, SubMConv3d

from ..errors import UserError
from ..sparse.gather_conv import (
    FlatRulebook,
    conv_from_rulebook,
    spconv_conv_from_rulebook,
    spconv_offset_weights,
)
from ..sparse.native_rulebook import native_pairs_available, regular_rulebook, subm_rulebook
from ..sparse.rulebook import _as3, geometry, regular_conv_candidates, rulebook, unique_sites
from .importance import VoxelImportance, keep_mask


class _SPSSMixin:
    """Importance scoring, keep masks and pair bookkeeping shared by both convs."""

    def _init_spss(self, prune_ratio, importance, gate):
        if not 0.0 <= float(prune_ratio) < 1.0:
            raise UserError(f'prune_ratio must be in [0, 1), got {prune_ratio}')
        self.prune_ratio = float(prune_ratio)
        self.importance = VoxelImportance(self.in_channels, importance)
        # gating by the score is what trains a learned predictor; off by default for the
        # parameter-free magnitude score so that a dense checkpoint keeps its function
        self.gate = (importance == 'learned') if gate is None else bool(gate)
        self._last_pairs = None
        self.last_keep = None
        self.last_kept = None  # the kept rows (indices) of a submanifold call
        # 'spconv': decode spconv's C++ pair generation (CPU); 'torch': our sorted-key search
        self.rulebook_backend = 'spconv'
        # who runs gather-GEMM-scatter on the rulebook: spconv's kernels (the ones the dense
        # layers use) or torch index_select / mm / index_add_
        self.gemm_backend = 'torch'

    def _score_and_gate(self, x):
        scores = self.importance(x)
        keep = keep_mask(scores, x.indices[:, 0], self.prune_ratio, x.batch_size)
        feats = x.features * scores[:, None] if self.gate else x.features
        self.last_keep = keep.detach()
        return feats, keep

    def _conv(self, feats, book, num_out):
        """Run the rulebook (computed outputs only) and remember its pair counts."""
        self._last_pairs = book.counts()
        if self.gemm_backend == 'spconv' and native_pairs_available(feats):
            out = spconv_conv_from_rulebook(feats, self.weight, book, num_out)
        else:
            out = conv_from_rulebook(feats, spconv_offset_weights(self.weight), book, num_out)
        if self.bias is not None:
            out = out + self.bias
        return out

    def _use_native(self, x) -> bool:
        return self.rulebook_backend == 'spconv' and native_pairs_available(x.features)

    def flops_pairs(self, inputs, output):
        """Pairs actually computed by the last forward (None: the plain spconv path ran)."""
        if self._last_pairs is None:
            from ..cost.counter import sparse_conv_pairs
            return sparse_conv_pairs(self, inputs[0], output)
        return self._last_pairs


class SPSSSubMConv3d(_SPSSMixin, SubMConv3d):
    """Submanifold conv computing outputs at the kept voxels only (pruned ones pass through).

    Args:
        in_channels (int): input channels (equal to ``out_channels`` when pruning).
        out_channels (int): output channels.
        kernel_size (int | tuple): spconv's kernel size.
        *args: SubMConv3d's other arguments (stride, padding, dilation, ...).
        prune_ratio (float): fraction of each sample's voxels pruned, in [0, 1); 0 runs
            spconv's SubMConv3d unchanged. Defaults to 0.5.
        importance (str): 'magnitude', 'learned' or 'foreground' (see VoxelImportance).
            Defaults to 'magnitude'.
        gate (bool, optional): multiply the features by their importance. None: only for
            'learned'.
        **kwargs: SubMConv3d's keyword arguments (bias, indice_key, ...).
    """

    def __init__(self, in_channels, out_channels, kernel_size, *args, prune_ratio=0.5,
                 importance='magnitude', gate=None, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, *args, **kwargs)
        if prune_ratio > 0 and in_channels != out_channels:
            raise UserError('SPSSSubMConv3d passes pruned voxels through, so it needs '
                             f'in_channels == out_channels (got {in_channels} -> '
                             f'{out_channels}); use prune_ratio=0 for this layer')
        self._init_spss(prune_ratio, importance, gate)

    def kept_outputs(self, x: SparseConvTensor):
        """(input features as passed through, kept rows, conv outputs at the kept rows only)."""
        feats, keep = self._score_and_gate(x)
        kept = self.last_kept = torch.nonzero(keep).flatten()
        if self._use_native(x):
            book = subm_rulebook(x, self).keep_outputs(keep, renumber=True)
        else:
            pad = tuple((k - 1) // 2 * d for k, d in zip(_as3(self.kernel_size),
                                                         _as3(self.dilation)))
            book = FlatRulebook.from_pairs(rulebook(x.indices, x.indices[kept],
                                                    self.kernel_size, 1, pad, self.dilation))
        return feats, kept, self._conv(feats, book, len(kept))

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        if self.prune_ratio == 0 and not self.force_rulebook:
            self._last_pairs = None
            return super().forward(x)
        feats, kept, out = self.kept_outputs(x)
        return x.replace_feature(feats.index_copy(0, kept, out))

    force_rulebook = False  # True: run the rulebook path even at ratio 0 (tests, bench)


class SPSSSparseConv3d(_SPSSMixin, SparseConv3d):
    """Strided sparse conv: important voxels dilate, unimportant ones keep their own site.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        kernel_size (int | tuple): spconv's kernel size.
        *args: SparseConv3d's other arguments (stride, padding, dilation, ...).
        prune_ratio (float): fraction of each sample's voxels that do not dilate, in
            [0, 1); 0 runs spconv's SparseConv3d unchanged. Defaults to 0.5.
        importance (str): 'magnitude', 'learned' or 'foreground'. Defaults to 'magnitude'.
        gate (bool, optional): multiply the features by their importance. None: only for
            'learned'.
        **kwargs: SparseConv3d's keyword arguments.
    """

    def __init__(self, in_channels, out_channels, kernel_size, *args, prune_ratio=0.5,
                 importance='magnitude', gate=None, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, *args, **kwargs)
        self._init_spss(prune_ratio, importance, gate)

    force_rulebook = False

    def output_hw(self, spatial_shape) -> list:
        """The output grid's size as host integers (no device value read back)."""
        geom = [_as3(v) for v in (self.kernel_size, self.stride, self.padding, self.dilation)]
        return [(int(n) + 2 * p - d * (k - 1) - 1) // st + 1
                for n, k, st, p, d in zip(spatial_shape, *geom)]

    def output_shape(self, spatial_shape, device=None):
        ks, s, p, d = geometry(device, self.kernel_size, self.stride, self.padding,
                               self.dilation)
        shape = torch.tensor(list(spatial_shape), dtype=torch.long, device=device)
        return (shape + 2 * p - d * (ks - 1) - 1) // s + 1

    def _own(self, indices: torch.Tensor, out_shape: torch.Tensor):
        """Per voxel: its own output cell (floor((f + p) / s), clamped into the output), the
        kernel offset id that pairs it there, and whether the kernel reaches that cell."""
        ks, s, p, d = geometry(indices.device, self.kernel_size, self.stride, self.padding,
                               self.dilation)
        fine = indices[:, 1:].long()
        own = torch.minimum(torch.div(fine + p, s, rounding_mode='floor'), out_shape - 1)
        own = own.clamp(min=0)
        k = fine + p - own * s
        ok = ((k >= 0) & (k % d == 0) & (k // d < ks)).all(1)
        kk = torch.div(k, d, rounding_mode='floor')
        offset = (kk[:, 0] * ks[1] + kk[:, 1]) * ks[2] + kk[:, 2]
        return own, offset, ok

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        if self.prune_ratio == 0 and not self.force_rulebook:
            self._last_pairs = None
            return super().forward(x)
        feats, keep = self._score_and_gate(x)
        out_shape = self.output_shape(x.spatial_shape, x.indices.device)
        if self._use_native(x):
            full_sites, book = regular_rulebook(x, self)
            _, own_offset, ok = self._own(x.indices, out_shape)
            # computed: every output an important voxel reaches, and the own cell of each
            # unimportant one (the pair at its own offset)
            src = book.rows_in
            hit = keep[src] | ((book.offset == own_offset[src]) & ok[src])
            computed = torch.zeros(len(full_sites), dtype=torch.long, device=keep.device)
            computed = computed.index_add_(0, book.rows_out, hit.long()) > 0
            book = book.keep_outputs(computed, renumber=True)
            sites = full_sites.index_select(0, torch.nonzero(computed).flatten()).long()
        else:
            # the cells the kept voxels' kernels reach and the pruned voxels' own cells, in
            # one unique (no boolean selection of either set)
            own, _, own_ok = self._own(x.indices, out_shape)
            grown, grown_ok = regular_conv_candidates(x.indices, self.kernel_size, self.stride,
                                                      self.padding, self.dilation,
                                                      x.spatial_shape)
            cells = torch.cat([grown.reshape(-1, 4),
                               torch.cat([x.indices[:, :1].long(), own], 1)])
            valid = torch.cat([(grown_ok & keep[None]).reshape(-1), own_ok & ~keep])
            sites = unique_sites(cells, valid)
            book = FlatRulebook.from_pairs(rulebook(x.indices, sites, self.kernel_size,
                                                    self.stride, self.padding, self.dilation))
        out = self._conv(feats, book, len(sites))
        return SparseConvTensor(out, sites.int(), self.output_hw(x.spatial_shape), x.batch_size,
                                indice_dict=dict(x.indice_dict))


class SPSSBlock(SparseSequential):
    """A (SPSSSubMConv3d, norm, act...) block whose pruned voxels skip the whole block: the
    conv, norm and activation run on the kept voxels only and the pruned ones keep the
    block's input. SPS-Conv passes pruned voxels through the conv alone, so norm statistics
    fitted to conv outputs then meet raw inputs; skipping the block keeps a trained model's
    features in range and also saves the norm / activation work. Same children and
    state_dict keys as the SparseSequential it replaces.

    Args:
        *modules (nn.Module): an SPSSSubMConv3d followed by its norm / activation layers.
    """

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        conv, rest = self[0], list(self)[1:]
        if (conv.prune_ratio == 0 and not conv.force_rulebook) or len(x.indices) == 0:
            return super().forward(x)
        y = conv(x)  # through __call__, so FLOPs hooks see the pairs it computed
        kept = conv.last_kept  # the rows its kept_outputs computed
        out = y.features.index_select(0, kept)  # rows not kept hold the (gated) input
        for m in rest:
            out = m(out)
        return y.replace_feature(y.features.index_copy(0, kept, out))
