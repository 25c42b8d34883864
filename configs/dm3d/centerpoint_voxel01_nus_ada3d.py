# Ada3D step 3 of 3 on mmdet3d's CenterPoint nuScenes config (0.1 m voxels): detector and
# predictor fine-tuned jointly with the dropping in place (75 % of the non-empty BEV columns
# kept after 3D stages 2 and 4, 50 % of the BEV pixels entering the 2D backbone), on the
# detector's fine-tune base schedule. The neck computes the active pixels only and the
# CenterHead's convs skip the pixels Ada3D dropped (../_base_/models/ada3d_sparse_head.py:
# the same state_dict keys; training runs their own forwards). Set load_from to your step-2
# checkpoint (centerpoint_voxel01_nus_ada3d_stage2.py). The Ada3D model DM3D prunes jointly
# (tools/prune.py --spatial), and the one tools/bench.py detector_speed --settings centerpoint-nus
# times with random weights.
_base_ = ['./centerpoint_voxel01_nus_ada3d_stage2.py', '../_base_/models/ada3d_sparse_head.py']
model = dict(train_predictor_only=False,
             pts_neck=dict(_base_.ada3d_sparse_neck, upsample_cfg=_base_.ada3d_upsample),
             pts_bbox_head=_base_.ada3d_sparse_head)
