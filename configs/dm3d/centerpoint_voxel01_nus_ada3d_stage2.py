# Ada3D step 2 of 3 on mmdet3d's CenterPoint nuScenes config (0.1 m voxels): the BEV
# importance predictor trained alone (train_predictor_only=True: the detector frozen) with
# the dropping in place, on the detector's fine-tune base schedule
# (centerpoint_voxel01_nus_finetune.py). Set load_from to your step-1 checkpoint
# (centerpoint_voxel01_nus_ada3d_stage1.py). Step 3: centerpoint_voxel01_nus_ada3d.py.
_base_ = ['./centerpoint_voxel01_nus_finetune.py', '../_base_/models/ada3d.py']
model = dict(type='Ada3DCenterPoint',
             train_predictor_only=True,
             importance_loss=dict(weight=1.0),
             pts_middle_encoder=_base_.ada3d_encoder,
             pts_backbone=_base_.ada3d_backbone,
             pts_neck=dict(upsample_cfg=_base_.ada3d_upsample))
