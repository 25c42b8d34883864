# Ada3D on the demo CenterPoint from the dense weights, step 2 of 2: detector and predictor
# fine-tuned jointly with the dropping in place (Ada3D's joint step,
# ../demo/centerpoint_synth-kitti_cpu_ada3d.py: 6 epochs) and each 2D block's first conv
# growing the active pixels, from step 1
# (centerpoint_synth-kitti_cpu_ada3d-grow_stage2_from-dense.py), with a frozen dense teacher:
# its CenterHead's heatmaps and regression maps and its BEV features over the pixels the
# student keeps, added to the GT losses.
#   tools/train.py configs/distill/centerpoint_synth-kitti_cpu_ada3d-grow_kd.py \
#       --cfg-options load_from=STEP1.pth distill.teacher.checkpoint=TEACHER.pth
_base_ = ['../demo/centerpoint_synth-kitti_cpu_ada3d.py']
model = dict(pts_backbone=dict(grow_per_block=True))
distill = dict(
    teacher=dict(config='configs/demo/centerpoint_synth-kitti_cpu.py',
                 checkpoint='checkpoints/centerpoint_synth-kitti_cpu.pth'),
    losses=[dict(type='center_head_response', loss_weight=2.0, box_weight=0.25, cls_norm='peaks'),
            dict(type='bev_feature', loss_weight=0.5, region='active')])
custom_hooks = [dict(type='DistillationHook')]
