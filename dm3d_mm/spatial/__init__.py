"""Spatial (voxel / BEV pixel) pruning modules that really skip the pruned work."""
from .importance import VoxelImportance, keep_mask
from .spss_conv import SPSSBlock, SPSSSparseConv3d, SPSSSubMConv3d

__all__ = ['VoxelImportance', 'keep_mask', 'SPSSSubMConv3d', 'SPSSSparseConv3d', 'SPSSBlock']
from .spss_encoder import SPSSSparseEncoder  # noqa: E402
from .spss_detector import (SPSSCenterPoint, SPSSForegroundLoss, SPSSVoxelNet,  # noqa: E402
                            points_in_boxes, voxel_centres)

__all__ += ['SPSSSparseEncoder', 'SPSSVoxelNet', 'SPSSCenterPoint', 'SPSSForegroundLoss',
            'points_in_boxes', 'voxel_centres']
from .ada3d_detector import (Ada3DCenterPoint, Ada3DImportanceLoss,  # noqa: E402
                             Ada3DVoxelNet)
from .ada3d_encoder import Ada3DSparseEncoder, column_keep  # noqa: E402
from .bev_importance import BEVImportancePredictor, center_heatmap  # noqa: E402
from .sparse_bev_backbone import SparseBEVSECOND, run_block_on_rows  # noqa: E402
from .sparse_bev_conv import SparseBEVConv2d, SparseBEVDeconv2d  # noqa: E402
from .spbn import SparsityPreservingBN2d  # noqa: E402

__all__ += ['Ada3DVoxelNet', 'Ada3DCenterPoint', 'Ada3DImportanceLoss', 'Ada3DSparseEncoder',
            'column_keep', 'BEVImportancePredictor',
            'center_heatmap', 'SparseBEVConv2d', 'SparseBEVDeconv2d', 'SparseBEVSECOND',
            'run_block_on_rows', 'SparsityPreservingBN2d']
from .sparse_bev_head import SparseBEVAnchor3DHead, pointwise_convs_on_support  # noqa: E402
from .sparse_bev_neck import BEVSupport, SparseBEVSECONDFPN, support_of  # noqa: E402

__all__ += ['SparseBEVSECONDFPN', 'BEVSupport', 'support_of', 'SparseBEVAnchor3DHead',
            'pointwise_convs_on_support']
from .support_conv import SupportBN2d, SupportConv2d  # noqa: E402

__all__ += ['SupportConv2d', 'SupportBN2d']
