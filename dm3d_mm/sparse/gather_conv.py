"""Sparse convolution computed from an explicit rulebook (one gather, a GEMM per offset, one
scatter), and the flat rulebook it runs on.

Only the outputs present in the rulebook are computed, so a rulebook restricted to the
kept outputs really skips the pruned work (unlike computing everything and overwriting).
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch


@dataclass
class FlatRulebook:
    """All (input row, output row) pairs, grouped by kernel offset (offset ids ascending);
    ``num_out``: the output rows it was built for where the builder knows it on the host
    (None: unknown); ``sizes``: the pairs per offset on the host, where known (else read
    back once, by :meth:`host_counts`)."""
    rows_in: torch.Tensor
    rows_out: torch.Tensor
    offset: torch.Tensor  # kernel offset id of every pair
    num_offsets: int
    num_out: Optional[int] = None
    sizes: Optional[List[int]] = None

    @classmethod
    def from_pairs(cls, book: Sequence[Tuple[torch.Tensor, torch.Tensor]]) -> 'FlatRulebook':
        """The rulebook of per-offset (input rows, output rows) pairs, offset by offset."""
        dev = book[0][0].device if len(book) else None
        sizes = [len(i) for i, _ in book]  # shapes: known on the host, no device wait
        counts = torch.tensor(sizes, dtype=torch.long, device=dev)
        offset = torch.repeat_interleave(torch.arange(len(book), device=dev), counts,
                                         output_size=sum(sizes))

        def cat(ts):
            return torch.cat(ts).long() if ts else torch.zeros(0, dtype=torch.long, device=dev)
        return cls(cat([i for i, _ in book]), cat([o for _, o in book]), offset, len(book),
                   sizes=sizes)

    def counts(self) -> torch.Tensor:
        """Pairs per kernel offset, (K,) int64 (a scatter-add of the pairs' offsets: its size
        is K, so unlike ``bincount`` it does not wait for the data's maximum)."""
        return torch.zeros(self.num_offsets, dtype=torch.long,
                           device=self.offset.device).index_add_(
                               0, self.offset, torch.ones_like(self.offset))

    def host_counts(self) -> List[int]:
        """Pairs per kernel offset on the host: known from the builder, or read back once
        (one host sync per rulebook, however many convs run it)."""
        if self.sizes is None:
            self.sizes = self.counts().tolist()
        return self.sizes

    def keep_outputs(self, keep_out: torch.Tensor, renumber: bool = False) -> 'FlatRulebook':
        """Only the pairs whose output is kept (outputs renumbered to the kept ones if asked)."""
        sel = torch.nonzero(keep_out[self.rows_out]).flatten()
        rows_out = self.rows_out.index_select(0, sel)
        if renumber:
            rows_out = (torch.cumsum(keep_out.long(), 0) - 1).index_select(0, rows_out)
        return FlatRulebook(self.rows_in.index_select(0, sel), rows_out,
                            self.offset.index_select(0, sel), self.num_offsets)


def spconv_offset_weights(weight: torch.Tensor) -> torch.Tensor:
    """spconv 2.x weight (out, kz, ky, kx, in) -> (K, in, out), offsets in rulebook order."""
    out_c, in_c = weight.shape[0], weight.shape[-1]
    return weight.permute(1, 2, 3, 4, 0).reshape(-1, in_c, out_c)


def conv_from_rulebook(features: torch.Tensor, weight_kio: torch.Tensor, book: FlatRulebook,
                       num_out: int) -> torch.Tensor:
    """out[o] = sum over pairs (i, o) at offset k of features[i] @ W_k."""
    counts = book.host_counts()
    gathered = features.index_select(0, book.rows_in)
    out = features.new_zeros(num_out, weight_kio.shape[-1])
    if not len(gathered):
        return out
    # each offset's rows and weight as views from one split / unbind (not a slice and a
    # select per offset: fewer ops for the host to dispatch)
    segments, weights = gathered.split(counts), weight_kio.unbind(0)
    if torch.is_grad_enabled() and (features.requires_grad or weight_kio.requires_grad):
        products = torch.cat([seg @ w for seg, w, n in zip(segments, weights, counts) if n])
    else:  # inference: write each offset's GEMM straight into one buffer (no concat copy)
        products = features.new_empty(len(gathered), weight_kio.shape[-1])
        for seg, w, dst, n in zip(segments, weights, products.split(counts), counts):
            if n:
                torch.mm(seg, w, out=dst)
    return out.index_add_(0, book.rows_out, products)


def spconv_pair_tensors(book: FlatRulebook) -> Tuple[torch.Tensor, torch.Tensor]:
    """The rulebook in spconv's native layout: pairs (2, K, max_n) int32 and counts (K,)."""
    counts = book.counts()
    width = max(int(counts.max()) if len(counts) else 0, 1)
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.arange(len(book.offset), device=counts.device) - starts[book.offset]
    pairs = torch.full((2, book.num_offsets, width), -1, dtype=torch.int32,
                       device=counts.device)
    pairs[0, book.offset, pos] = book.rows_in.int()
    pairs[1, book.offset, pos] = book.rows_out.int()
    return pairs, counts.int()


def spconv_conv_from_rulebook(features: torch.Tensor, weight: torch.Tensor, book: FlatRulebook,
                              num_out: int) -> torch.Tensor:
    """The same product through spconv's own gather-GEMM-scatter (and its backward)."""
    from spconv.core import ConvAlgo
    from spconv.pytorch import functional as Fsp
    if len(book.rows_in) == 0:
        return features.new_zeros(num_out, weight.shape[0]) + 0 * weight.sum()
    pairs, counts = spconv_pair_tensors(book)
    return Fsp.indice_conv(features, weight, pairs, counts, num_out, ConvAlgo.Native)
