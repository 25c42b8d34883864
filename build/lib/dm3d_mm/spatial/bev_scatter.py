"""Sparse 3D features -> the dense (B, C*D, H, W) BEV map, written straight into the
channels-first layout.

spconv's ``dense()`` scatters into a channels-last grid and then transposes the whole grid;
on CPU that transpose is about a quarter of SECOND's encoder time and does not shrink when
voxels are pruned. Writing each active site's channels in place gives the same tensor.
"""
import torch


def sparse_to_bev(x) -> torch.Tensor:
    """Same values and layout as ``x.dense().view(B, C * D, H, W)`` (channel c*D + d)."""
    feats = x.features
    d, h, w = (int(v) for v in x.spatial_shape)
    c = feats.shape[1]
    grid = feats.new_zeros(x.batch_size, c, d, h, w)
    if len(feats):
        b, z, y, xx = x.indices.long().unbind(1)
        grid.permute(0, 2, 3, 4, 1)[b, z, y, xx] = feats  # a view: writes into ``grid``
    return grid.view(x.batch_size, c * d, h, w)
