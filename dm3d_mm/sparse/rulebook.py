"""Sparse-convolution geometry: kernel offsets, (input, output) voxel pairs per kernel
offset, output sites. Used both to count FLOPs exactly (``cost/``) and to build the rulebooks
the spatial-pruning convs execute (``spatial/``).

Pairs are found from the active coordinates themselves, not from spconv's stored rulebook (which
leaves the centre offset and one half of the symmetric pairs of a submanifold conv implicit
on CPU). One relation covers every kind: a fine site f and a coarse site c are paired at
kernel offset k when ``f = c * stride - padding + k * dilation`` (per axis). A regular conv
maps fine -> coarse, an inverse conv coarse -> fine, a submanifold conv has stride 1,
padding (K - 1) / 2 * dilation and identical fine and coarse sets.
"""
from typing import List, Optional, Sequence, Tuple

import torch


def _as3(v) -> Tuple[int, int, int]:
    if isinstance(v, int):
        return (v, v, v)
    v = tuple(int(x) for x in v)
    return v if len(v) == 3 else (v[0],) * 3


def kernel_offsets(kernel_size, device=None) -> torch.Tensor:
    """(K, 3) offsets in spconv's weight order (z fastest-varying last)."""
    kz, ky, kx = _as3(kernel_size)
    grid = torch.meshgrid(torch.arange(kz, device=device), torch.arange(ky, device=device),
                          torch.arange(kx, device=device), indexing='ij')
    return torch.stack([g.reshape(-1) for g in grid], 1)


def geometry(device, *values) -> List[torch.Tensor]:
    """Per-axis (3,) int64 tensors of conv geometry (stride, padding, ...) on ``device``."""
    return [torch.tensor(_as3(v), dtype=torch.long, device=device) for v in values]


#: bits per axis of the int64 voxel keys: (z, y, x) in [0, 2**18) (a 0.05 m grid 13 km wide)
#: and batch indices below 2**9; a fixed width, so no device value is read back to size them
KEY_BITS = 18
_AXIS_MASK = (1 << KEY_BITS) - 1


def _encode(idx: torch.Tensor) -> torch.Tensor:
    """Unique int64 key of (batch, z, y, x) rows ordered as the rows are lexicographically;
    coordinates must lie in [0, 2**KEY_BITS)."""
    idx = idx.long()
    key = idx[:, 0]
    for axis in range(3):
        key = (key << KEY_BITS) | idx[:, axis + 1]
    return key


def rulebook(fine: torch.Tensor, coarse: torch.Tensor, kernel_size, stride=1, padding=0,
             dilation=1) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Per kernel offset, the paired (fine row, coarse row) indices of two site sets.

    Rows are (batch, z, y, x). Only the coarse sites given are searched, so a rulebook for a
    subset of outputs costs (and holds) only that subset's pairs. All offsets are looked up
    in one sorted-key search (no Python loop over offsets).
    """
    dev = coarse.device
    k_off = kernel_offsets(kernel_size, dev)
    s, p, d = geometry(dev, stride, padding, dilation)
    empty = torch.zeros(0, dtype=torch.long, device=dev)
    if len(fine) == 0 or len(coarse) == 0:
        return [(empty, empty) for _ in range(len(k_off))]
    fine = fine.long()
    coarse = coarse.long()
    # every candidate coordinate shifted to be >= 0
    shift = (p.max() + 1).long()
    shift4 = torch.stack([torch.zeros((), dtype=torch.long, device=dev), shift, shift, shift])
    fine_keys, fine_order = torch.sort(_encode(fine + shift4))
    # candidates: offsets major, coarse rows minor, so each offset's pairs are contiguous
    xyz = (coarse[:, 1:] * s - p + shift)[None] + (k_off * d)[:, None]  # (K, M, 3)
    ok = (xyz >= 0).all(-1)
    batch = coarse[:, 0].expand(len(k_off), -1)
    keys = _encode(torch.cat([batch[..., None], xyz.clamp(min=0)], -1).reshape(-1, 4))
    pos = torch.searchsorted(fine_keys, keys).clamp(max=len(fine_keys) - 1)
    hit = (fine_keys[pos] == keys) & ok.reshape(-1)
    # the pairs per offset read once; their total sizes the pairs' selection (no second wait)
    counts = hit.reshape(len(k_off), -1).sum(1).tolist()
    flat = torch.nonzero_static(hit, size=sum(counts)).flatten()
    rows_in = fine_order[pos[flat]]
    rows_out = flat % len(coarse)
    return list(zip(torch.split(rows_in, counts), torch.split(rows_out, counts)))


def unique_sites(sites: torch.Tensor, valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Sorted unique (batch, z, y, x) rows (those where ``valid``, if given); a 1-D unique of
    packed keys (unique(dim=0) is slow). The invalid rows are left out without a boolean
    selection: their keys become one sentinel above every site's, dropped from the end.

    Args:
        sites (Tensor): (M, 4) integer sites, coordinates in [0, 2**KEY_BITS).
        valid (Tensor, optional): (M, ) bool, the rows to keep. Defaults to None (all).
    """
    if len(sites) == 0:
        return sites.long().reshape(0, 4)
    keys = _encode(sites.long().clamp(min=0))
    if valid is not None:
        sentinel = torch.full((1,), torch.iinfo(torch.long).max, dtype=torch.long,
                              device=keys.device)
        keys = torch.unique(torch.cat([torch.where(valid, keys, sentinel), sentinel]))[:-1]
    else:
        keys = torch.unique(keys)
    out = torch.empty(len(keys), 4, dtype=torch.long, device=keys.device)
    for axis in (3, 2, 1):
        out[:, axis] = keys & _AXIS_MASK
        keys = keys >> KEY_BITS
    out[:, 0] = keys
    return out


def regular_conv_candidates(fine: torch.Tensor, kernel_size, stride, padding, dilation,
                            spatial_shape: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Every fine site's output cell at every kernel offset, (K, N, 4) (batch, z, y, x), and
    whether the offset pairs it with an in-bounds cell, (K, N).

    Args:
        fine (Tensor): (N, 4) input sites (batch, z, y, x).
        kernel_size, stride, padding, dilation (int | tuple): the conv's geometry.
        spatial_shape (Sequence[int]): the input grid's (z, y, x) size.
    """
    dev = fine.device
    k_off = kernel_offsets(kernel_size, dev)
    s, p, d, ks = geometry(dev, stride, padding, dilation, kernel_size)
    shape = torch.tensor(list(spatial_shape), dtype=torch.long, device=dev)
    out_shape = (shape + 2 * p - d * (ks - 1) - 1) // s + 1
    fine = fine.long()
    num = (fine[:, 1:] + p)[None] - (k_off * d)[:, None]  # (K, N, 3)
    c = torch.div(num, s, rounding_mode='floor')
    ok = ((num - c * s) == 0).all(-1) & ((c >= 0) & (c < out_shape)).all(-1)
    batch = fine[:, 0].expand(len(k_off), -1)
    return torch.cat([batch[..., None], c], -1), ok


def regular_conv_outputs(fine: torch.Tensor, kernel_size, stride, padding, dilation,
                         spatial_shape: Sequence[int]) -> torch.Tensor:
    """Output sites of a regular sparse conv: every in-bounds c with a paired fine site."""
    if len(fine) == 0:
        return torch.zeros((0, 4), dtype=torch.long, device=fine.device)
    cells, ok = regular_conv_candidates(fine, kernel_size, stride, padding, dilation,
                                        spatial_shape)
    return unique_sites(cells.reshape(-1, 4), ok.reshape(-1))
