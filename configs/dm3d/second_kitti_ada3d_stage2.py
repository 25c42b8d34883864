# Ada3D step 2 of 3 on mmdet3d's SECOND KITTI config: the BEV importance predictor trained
# alone (train_predictor_only=True: the detector frozen) with the dropping in place, on the
# detector's fine-tune base schedule (second_kitti_finetune.py). Set load_from to your step-1
# checkpoint (second_kitti_ada3d_stage1.py). Step 3: second_kitti_ada3d.py.
_base_ = ['./second_kitti_finetune.py', '../_base_/models/ada3d.py']
model = dict(type='Ada3DVoxelNet',
             train_predictor_only=True,
             importance_loss=dict(weight=1.0),
             middle_encoder=_base_.ada3d_encoder,
             backbone=_base_.ada3d_backbone,
             neck=dict(type='SparseBEVSECONDFPN', upsample_cfg=_base_.ada3d_upsample),
             bbox_head=dict(type='SparseBEVAnchor3DHead'))
