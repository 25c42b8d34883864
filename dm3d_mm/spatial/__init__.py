"""Spatial (voxel / BEV pixel) pruning modules that really skip the pruned work."""
from .importance import VoxelImportance, keep_mask
from .spss_conv import SPSSSparseConv3d, SPSSSubMConv3d

__all__ = ['VoxelImportance', 'keep_mask', 'SPSSSubMConv3d', 'SPSSSparseConv3d']
from .spss_encoder import SPSSSparseEncoder  # noqa: E402

__all__ += ['SPSSSparseEncoder']
