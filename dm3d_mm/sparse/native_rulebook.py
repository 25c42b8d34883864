"""Rulebooks from spconv's own (C++) native pair generation, decoded to explicit pairs.

On CPU spconv stores a submanifold rulebook compactly: the centre offset is implicit (every
site pairs with itself) and offsets past the centre hold their pairs under the count of
their mirror offset. ``subm_rulebook`` decodes that into a flat rulebook and caches both
spconv's data (under the layer's ``indice_key``, as spconv's own SubMConv3d does) and the
decoded form, so pruned and plain layers of a stage share one pair generation.
"""
from typing import List, Optional, Tuple

import torch
from spconv.core import ConvAlgo
from spconv.pytorch import ops
from spconv.pytorch.core import IndiceData

from .gather_conv import FlatRulebook


def native_pairs_available(features: torch.Tensor) -> bool:
    """The decoder knows spconv's CPU layout only (``features`` of the sparse tensor)."""
    return features.device.type == 'cpu'


def indice_data(x, conv, subm: bool) -> IndiceData:
    """spconv's native rulebook of ``conv`` on ``x``: the one cached under a submanifold
    conv's ``indice_key`` (stored there when generated here), else spconv's pair
    generation."""
    key = conv.indice_key
    datas = x.find_indice_pair(key) if (subm and key is not None) else None
    if datas is not None:
        return datas
    outids, pairs, num = ops.get_indice_pairs(
        x.indices, x.batch_size, x.spatial_shape, ConvAlgo.Native, conv.kernel_size,
        conv.stride, conv.padding, conv.dilation, conv.output_padding, subm, False)
    out_shape = x.spatial_shape if subm else ops.get_conv_output_size(
        x.spatial_shape, conv.kernel_size, conv.stride, conv.padding, conv.dilation)
    datas = IndiceData(outids, x.indices, pairs, num, x.spatial_shape, out_shape,
                       is_subm=subm, algo=ConvAlgo.Native, ksize=conv.kernel_size,
                       stride=conv.stride, dilation=conv.dilation, padding=conv.padding)
    if subm and key is not None:
        x.indice_dict[key] = datas  # shared by the tensors replace_feature makes from x
    return datas


def loop_counts(datas: IndiceData, subm: bool) -> torch.Tensor:
    """(K,) int32 pairs per kernel offset as a non-submanifold native conv loops over them:
    a submanifold rulebook's offsets past the centre take their mirror's count and the
    centre (every site with itself, implicit) none."""
    num = datas.indice_pair_num
    if not subm:
        return num.clone()
    k = len(num)
    counts = torch.where(torch.arange(k, device=num.device) > k // 2, num.flip(0), num)
    counts[k // 2] = 0
    return counts


def _same_sites(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a is b or (a.shape == b.shape and bool(torch.equal(a, b)))


def call_pair_counts(conv, x, out) -> Optional[torch.Tensor]:
    """(K,) int64 pairs per kernel offset that spconv's native CPU conv ``conv`` multiplied
    in its call ``x -> out`` (a submanifold conv's centre: every site with itself), read
    from the rulebook spconv cached under the conv's ``indice_key``; None where there is
    none to read (no key, not on CPU, another algorithm, or a cached rulebook of other
    sites).

    Args:
        conv (nn.Module): an spconv conv (submanifold, regular or inverse).
        x (SparseConvTensor): its input.
        out (SparseConvTensor): its output.
    """
    key = getattr(conv, 'indice_key', None)
    if key is None or not native_pairs_available(out.features):
        return None
    datas = out.indice_dict.get(key)
    if not isinstance(datas, IndiceData) or datas.algo != ConvAlgo.Native \
            or datas.indice_pair_num is None:
        return None
    # an inverse conv runs its regular conv's rulebook backwards: same pairs per offset
    fine, coarse = (out, x) if getattr(conv, 'inverse', False) else (x, out)
    if not (_same_sites(datas.indices, fine.indices)
            and _same_sites(datas.out_indices, coarse.indices)):
        return None
    counts = loop_counts(datas, datas.is_subm).long()
    if datas.is_subm:  # the centre, implicit in spconv's rulebook: every site with itself
        counts[len(counts) // 2] = fine.indices.shape[0]
    return counts


def _decode(datas: IndiceData, num_sites: int, subm: bool) -> FlatRulebook:
    pairs, num = datas.indice_pairs, datas.indice_pair_num.tolist()
    k = len(num)
    centre = k // 2
    book: List[Tuple[torch.Tensor, torch.Tensor]] = []
    for i in range(k):
        if subm and i == centre:
            rows = torch.arange(num_sites)
            book.append((rows, rows))
            continue
        n = num[k - 1 - i] if (subm and i > centre) else num[i]
        book.append((pairs[0, i, :n], pairs[1, i, :n]))
    return FlatRulebook.from_pairs(book)


def subm_rulebook(x, conv) -> FlatRulebook:
    """Full (all sites) rulebook of a submanifold conv on ``x``, centre offset included."""
    datas = indice_data(x, conv, subm=True)
    flat = getattr(datas, 'dm3d_flat', None)
    if flat is None:
        flat = datas.dm3d_flat = _decode(datas, x.indices.shape[0], subm=True)
    return flat


def regular_rulebook(x, conv) -> Tuple[torch.Tensor, FlatRulebook]:
    """(output sites, rulebook) of the full regular sparse conv on ``x``."""
    datas = indice_data(x, conv, subm=False)
    return datas.out_indices, _decode(datas, x.indices.shape[0], subm=False)
