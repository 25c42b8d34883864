# Ada3D on the demo CenterPoint, step 1 of 3 with a teacher: the sparsity-preserving
# detector trained from scratch on the dense demo's schedule
# (../demo/centerpoint_synth-kitti_cpu_ada3d_stage1.py) with the dense demo CenterPoint
# (trained on that same schedule) as a frozen teacher: its heatmaps and regression maps and
# its BEV features over the student's active pixels are added to the GT losses. Steps 2 and
# 3: centerpoint_synth-kitti_cpu_ada3d-kd_stage2.py and centerpoint_synth-kitti_cpu_ada3d-kd.py.
_base_ = ['../demo/centerpoint_synth-kitti_cpu_ada3d_stage1.py',
          '../_base_/distill/centerpoint_dense_teacher.py']
custom_hooks = [dict(type='DistillationHook')]
