"""Exact (input, output) voxel pair counts per kernel offset of a sparse convolution.

The counts are a function of the two site sets and the kernel geometry alone, so they are
kept (a bounded most-recently-used memo keyed by the geometry and a 128-bit BLAKE2 digest of
each site set): the convs of a stage that share one rulebook, and every combination of a
joint search that leaves a layer's inputs as they were, enumerate the pairs once.
"""
import hashlib
from collections import OrderedDict
from typing import Tuple

import torch

from ..sparse.rulebook import rulebook

MEMO_SIZE = 2048
_memo: 'OrderedDict[tuple, torch.Tensor]' = OrderedDict()


def _digest(sites: torch.Tensor) -> Tuple[bytes, tuple]:
    """(digest of the site rows, their shape)."""
    rows = sites.detach().to('cpu', torch.int32).contiguous()
    return hashlib.blake2b(rows.numpy().tobytes(), digest_size=16).digest(), tuple(rows.shape)


def _as_tuple(v) -> tuple:
    return tuple(int(x) for x in v) if isinstance(v, (tuple, list)) else (int(v), )


def count_pairs(fine: torch.Tensor, coarse: torch.Tensor, kernel_size, stride=1,
                padding=0, dilation=1, memo: bool = True) -> torch.Tensor:
    """Pairs per kernel offset between fine and coarse site sets (rows: batch, z, y, x).

    Args:
        fine (Tensor): (N, 4) sites of the finer set (a conv's input, or a transposed
            conv's output).
        coarse (Tensor): (M, 4) sites of the coarser set.
        kernel_size, stride, padding, dilation: the conv's geometry (int or 3-tuple).
        memo (bool): read and keep the count in the memo. Defaults to True (False: always
            enumerate, e.g. to compare devices).

    Returns:
        Tensor: (K,) int64; its sum is the number of multiply-accumulate *vectors* (each costs
        nnz(W_k) MACs).
    """
    key = (_digest(fine), _digest(coarse), _as_tuple(kernel_size), _as_tuple(stride),
           _as_tuple(padding), _as_tuple(dilation)) if memo else None
    hit = _memo.get(key) if memo else None
    if hit is not None:
        _memo.move_to_end(key)
        return hit.clone()
    book = rulebook(fine, coarse, kernel_size, stride, padding, dilation)
    pairs = torch.tensor([len(f) for f, _ in book], dtype=torch.long)
    if memo:
        _memo[key] = pairs.clone()
        if len(_memo) > MEMO_SIZE:
            _memo.popitem(last=False)
    return pairs
