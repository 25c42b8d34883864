# The Ada3D CenterPoint trained from the dense weights with a dense teacher
# (centerpoint_synth-kitti_cpu_ada3d-grow_kd.py, checkpoint
# checkpoints/centerpoint_synth-kitti_cpu_ada3d-grow_kd.pth), run with a neck and head that
# skip the BEV pixels Ada3D dropped (as ../demo/centerpoint_synth-kitti_cpu_ada3d_sparse-head.py):
# the spatial model 'ada3d-grow_sparse-head' of tools/ablate.py.
_base_ = ['../demo/centerpoint_synth-kitti_cpu_ada3d_sparse-head.py']
model = dict(pts_backbone=dict(grow_per_block=True))
