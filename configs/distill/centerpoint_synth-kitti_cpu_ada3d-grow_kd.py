# Ada3D on the demo CenterPoint from the dense weights, step 2 of 2: detector and predictor
# fine-tuned jointly with the dropping in place (Ada3D's joint step,
# ../demo/centerpoint_synth-kitti_cpu_ada3d.py: 6 epochs) and each 2D block's first conv
# growing the active pixels, from step 1
# (centerpoint_synth-kitti_cpu_ada3d-grow_stage2_from-dense.py), with a frozen dense teacher:
# the dense CenterPoint trained on the same schedule (its fair control,
# ../demo/studies/centerpoint_synth-kitti_cpu_ada3d_control.py, which `make checkpoints`
# trains into work_dirs/demo_checkpoints/teachers/). Its CenterHead's heatmaps and regression
# maps and its BEV features over the pixels the student keeps are added to the GT losses.
#   D=configs/distill/centerpoint_synth-kitti_cpu_ada3d-grow
#   tools/train_demo_checkpoints.py ${D}_stage2_from-dense.py ${D}_kd.py
# writes checkpoints/centerpoint_synth-kitti_cpu_ada3d-grow_kd.pth (the spatial model
# 'ada3d-grow_sparse-head' of tools/ablate.py).
_base_ = ['../demo/centerpoint_synth-kitti_cpu_ada3d.py']
model = dict(pts_backbone=dict(grow_per_block=True))
distill = dict(
    teacher=dict(config='configs/demo/centerpoint_synth-kitti_cpu.py',
                 checkpoint='work_dirs/demo_checkpoints/teachers/'
                            'centerpoint_synth-kitti_cpu_ada3d_control.pth'),
    losses=[dict(type='center_head_response', loss_weight=2.0, box_weight=0.25, cls_norm='peaks'),
            dict(type='bev_feature', loss_weight=0.5, region='active')])
custom_hooks = [dict(type='DistillationHook')]
load_from = 'checkpoints/centerpoint_synth-kitti_cpu_ada3d-grow_stage2_from-dense.pth'
