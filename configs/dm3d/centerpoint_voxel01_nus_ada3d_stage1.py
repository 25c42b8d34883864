# Ada3D step 1 of 3 on mmdet3d's CenterPoint nuScenes config (0.1 m voxels): the detector
# trained from scratch on mmdet3d's own schedule (no checkpoint loaded) with Ada3D's
# sparsity-preserving 2D parts (../_base_/models/ada3d.py). No dropping yet. Steps 2 and 3:
# centerpoint_voxel01_nus_ada3d_stage2.py, centerpoint_voxel01_nus_ada3d.py.
_base_ = ['mmdet3d::centerpoint/centerpoint_voxel01_second_secfpn_8xb4-cyclic-20e_nus-3d.py',
          '../_base_/models/ada3d.py']
custom_imports = dict(imports=['dm3d_mm'], allow_failed_imports=False)
model = dict(pts_backbone=_base_.ada3d_backbone,
             pts_neck=dict(upsample_cfg=_base_.ada3d_upsample))
