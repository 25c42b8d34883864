# Ada3D step 1 of 3 on mmdet3d's SECOND KITTI config: the detector trained from scratch on
# mmdet3d's own schedule (no checkpoint loaded) with Ada3D's sparsity-preserving 2D parts
# (../_base_/models/ada3d.py); in eval the neck's blocks and the head's 1x1 convs compute the
# active pixels only (SparseBEVSECONDFPN, SparseBEVAnchor3DHead: the same state_dict keys as
# SECONDFPN and Anchor3DHead). No dropping yet. Steps 2 and 3: second_kitti_ada3d_stage2.py,
# second_kitti_ada3d.py.
_base_ = ['mmdet3d::second/second_hv_secfpn_8xb6-80e_kitti-3d-3class.py',
          '../_base_/models/ada3d.py']
custom_imports = dict(imports=['dm3d_mm'], allow_failed_imports=False)
model = dict(backbone=_base_.ada3d_backbone,
             neck=dict(type='SparseBEVSECONDFPN', upsample_cfg=_base_.ada3d_upsample),
             bbox_head=dict(type='SparseBEVAnchor3DHead'))
