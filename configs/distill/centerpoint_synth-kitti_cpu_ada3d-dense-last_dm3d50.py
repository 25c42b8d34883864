# DM3D on centerpoint_synth-kitti_cpu_ada3d-dense-last.py: the pruning and fine-tune schedule
# of ../demo/centerpoint_synth-kitti_cpu_ada3d_dm3d50.py on the Ada3D CenterPoint whose last
# 2D block is dense.
_base_ = ['../demo/centerpoint_synth-kitti_cpu_ada3d_dm3d50.py']
model = dict(pts_backbone=dict(dense_blocks=(1, )))
load_from = 'checkpoints/centerpoint_synth-kitti_cpu_ada3d-dense-last_kd.pth'
