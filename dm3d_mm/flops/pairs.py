"""Exact (input, output) voxel pair counts per kernel offset of a sparse convolution.

Counted from the active coordinates themselves, not from spconv's stored rulebook (which
leaves the centre offset and one half of the symmetric pairs of a submanifold conv implicit
on CPU). One relation covers every kind: a fine site f and a coarse site c are paired at
kernel offset k when ``f = c * stride - padding + k * dilation`` (per axis). A regular conv
maps fine -> coarse, an inverse conv coarse -> fine, a submanifold conv has stride 1,
padding (K - 1) / 2 * dilation and identical fine and coarse sets.
"""
from typing import List, Sequence, Tuple

import torch


def _as3(v) -> Tuple[int, int, int]:
    if isinstance(v, int):
        return (v, v, v)
    v = tuple(int(x) for x in v)
    return v if len(v) == 3 else (v[0],) * 3


def kernel_offsets(kernel_size) -> torch.Tensor:
    """(K, 3) offsets in spconv's weight order (z fastest-varying last)."""
    kz, ky, kx = _as3(kernel_size)
    grid = torch.meshgrid(torch.arange(kz), torch.arange(ky), torch.arange(kx),
                          indexing='ij')
    return torch.stack([g.reshape(-1) for g in grid], 1)


def _encode(idx: torch.Tensor, extent: torch.Tensor) -> torch.Tensor:
    """Unique int64 key of (batch, z, y, x) rows; coordinates must lie in [0, extent)."""
    idx = idx.long()
    key = idx[:, 0]
    for axis in range(3):
        key = key * int(extent[axis]) + idx[:, axis + 1]
    return key


def rulebook(fine: torch.Tensor, coarse: torch.Tensor, kernel_size, stride=1, padding=0,
             dilation=1) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Per kernel offset, the paired (fine row, coarse row) indices of two site sets.

    Rows are (batch, z, y, x). Only the coarse sites given are searched, so a rulebook for a
    subset of outputs costs (and holds) only that subset's pairs.
    """
    k_off = kernel_offsets(kernel_size)
    s = torch.tensor(_as3(stride))
    p = torch.tensor(_as3(padding))
    d = torch.tensor(_as3(dilation))
    empty = torch.zeros(0, dtype=torch.long)
    if len(fine) == 0 or len(coarse) == 0:
        return [(empty, empty) for _ in range(len(k_off))]
    fine = fine.long()
    coarse = coarse.long()
    # a common extent big enough for every candidate coordinate (shifted to be >= 0)
    shift = (p.max() + 1).long()
    hi = torch.maximum(fine[:, 1:].max(0).values, coarse[:, 1:].max(0).values * s)
    extent = hi + s + (k_off.max(0).values * d) + 2 * shift + 1
    shift4 = torch.stack([torch.zeros((), dtype=torch.long), shift, shift, shift])
    fine_keys, fine_order = torch.sort(_encode(fine + shift4, extent))
    coarse_rows = torch.arange(len(coarse))
    base = coarse[:, 1:] * s - p + shift
    out = []
    for k in k_off:
        cand = torch.cat([coarse[:, :1], base + k * d], 1)
        ok = (cand[:, 1:] >= 0).all(1)
        keys = _encode(cand[ok], extent)
        pos = torch.searchsorted(fine_keys, keys).clamp(max=len(fine_keys) - 1)
        hit = fine_keys[pos] == keys
        out.append((fine_order[pos[hit]], coarse_rows[ok][hit]))
    return out


def count_pairs(fine: torch.Tensor, coarse: torch.Tensor, kernel_size, stride=1,
                padding=0, dilation=1) -> torch.Tensor:
    """Pairs per kernel offset between fine and coarse site sets (rows: batch, z, y, x).

    Returns a (K,) int64 tensor; its sum is the number of multiply-accumulate *vectors*
    (each costs nnz(W_k) MACs).
    """
    book = rulebook(fine, coarse, kernel_size, stride, padding, dilation)
    return torch.tensor([len(f) for f, _ in book], dtype=torch.long)


def regular_conv_outputs(fine: torch.Tensor, kernel_size, stride, padding, dilation,
                         spatial_shape: Sequence[int]) -> torch.Tensor:
    """Output sites of a regular sparse conv: every in-bounds c with a paired fine site."""
    k_off = kernel_offsets(kernel_size)
    s = torch.tensor(_as3(stride))
    p = torch.tensor(_as3(padding))
    d = torch.tensor(_as3(dilation))
    ks = torch.tensor(_as3(kernel_size))
    shape = torch.tensor(list(spatial_shape))
    out_shape = (shape + 2 * p - d * (ks - 1) - 1) // s + 1
    outs = []
    for k in k_off:
        num = fine[:, 1:].long() + p - k * d
        ok = (num % s == 0).all(1)
        c = num[ok] // s
        inb = ((c >= 0) & (c < out_shape)).all(1)
        outs.append(torch.cat([fine[ok][inb][:, :1].long(), c[inb]], 1))
    if not outs:
        return torch.zeros((0, 4), dtype=torch.long)
    return torch.unique(torch.cat(outs), dim=0)
