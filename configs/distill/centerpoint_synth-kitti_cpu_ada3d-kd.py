# Ada3D on the demo CenterPoint, step 3 of 3 with a teacher: detector and predictor
# fine-tuned jointly with the dropping in place (../demo/centerpoint_synth-kitti_cpu_ada3d.py,
# 6 epochs) with a frozen dense teacher: the dense CenterPoint trained on the same schedule
# (its fair control, ../demo/studies/centerpoint_synth-kitti_cpu_ada3d_control.py, which
# `make checkpoints` trains into work_dirs/demo_checkpoints/teachers/). Its CenterHead's
# heatmaps and regression maps and its BEV features over the pixels the student keeps are
# added to the GT losses. From step 2 (centerpoint_synth-kitti_cpu_ada3d-kd_stage2.py). The
# demo's CenterPoint spatial model, checkpoints/centerpoint_synth-kitti_cpu_ada3d-kd.pth (run
# it with ../demo/centerpoint_synth-kitti_cpu_ada3d_sparse-head.py), made by `make checkpoints`:
#   D=configs/distill/centerpoint_synth-kitti_cpu_ada3d-kd
#   tools/train_demo_checkpoints.py ${D}_stage1.py ${D}_stage2.py ${D}.py
_base_ = ['../demo/centerpoint_synth-kitti_cpu_ada3d.py',
          '../_base_/distill/centerpoint_dense_teacher.py']
distill = dict(teacher=dict(checkpoint='work_dirs/demo_checkpoints/teachers/'
                                       'centerpoint_synth-kitti_cpu_ada3d_control.pth'))
custom_hooks = [dict(type='DistillationHook')]
load_from = 'checkpoints/centerpoint_synth-kitti_cpu_ada3d-kd_stage2.pth'
