# DM3D on centerpoint_synth-kitti_cpu_ada3d-grow_sparse-head.py: the pruning and fine-tune
# schedule of ../demo/centerpoint_synth-kitti_cpu_ada3d_sparse-head_dm3d50.py on the Ada3D
# CenterPoint whose 2D blocks grow the active pixels.
_base_ = ['../demo/centerpoint_synth-kitti_cpu_ada3d_sparse-head_dm3d50.py']
model = dict(pts_backbone=dict(grow_per_block=True))
