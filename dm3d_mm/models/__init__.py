"""mmdet3d model pieces the demo detectors need (registered in mmdet3d's MODELS)."""
from .sort_voxelization import SortVoxelDataPreprocessor, SortVoxelization, use_sort_voxelization
from .static_center_head import StaticCenterHead

__all__ = ['SortVoxelDataPreprocessor', 'SortVoxelization', 'StaticCenterHead',
           'use_sort_voxelization']
