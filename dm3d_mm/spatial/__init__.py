"""Spatial (voxel / BEV pixel) pruning modules that really skip the pruned work."""
from .ada3d_detector import Ada3DCenterPoint, Ada3DImportanceLoss, Ada3DVoxelNet
from .ada3d_encoder import Ada3DSparseEncoder, column_keep
from .bev_importance import BEVImportancePredictor, center_heatmap
from .importance import VoxelImportance, keep_mask
from .sparse_bev_backbone import SparseBEVSECOND, run_block_on_rows
from .sparse_bev_conv import SparseBEVConv2d, SparseBEVDeconv2d
from .sparse_bev_head import SparseBEVAnchor3DHead, pointwise_convs_on_support
from .sparse_bev_neck import BEVSupport, SparseBEVSECONDFPN, support_of
from .spbn import SparsityPreservingBN2d
from .spss_conv import SPSSBlock, SPSSSparseConv3d, SPSSSubMConv3d
from .spss_detector import (
                            SPSSCenterPoint,
                            SPSSForegroundLoss,
                            SPSSVoxelNet,
                            points_in_boxes,
                            voxel_centres,
)
from .spss_encoder import SPSSSparseEncoder
from .support_conv import SupportBN2d, SupportConv2d

__all__ = ['VoxelImportance', 'keep_mask', 'SPSSSubMConv3d', 'SPSSSparseConv3d', 'SPSSBlock',
           'SPSSSparseEncoder', 'SPSSVoxelNet', 'SPSSCenterPoint', 'SPSSForegroundLoss',
           'points_in_boxes', 'voxel_centres', 'Ada3DVoxelNet', 'Ada3DCenterPoint',
           'Ada3DImportanceLoss', 'Ada3DSparseEncoder', 'column_keep', 'BEVImportancePredictor',
           'center_heatmap', 'SparseBEVConv2d', 'SparseBEVDeconv2d', 'SparseBEVSECOND',
           'run_block_on_rows', 'SparsityPreservingBN2d', 'SparseBEVSECONDFPN', 'BEVSupport',
           'support_of', 'SparseBEVAnchor3DHead', 'pointwise_convs_on_support', 'SupportConv2d',
           'SupportBN2d']
