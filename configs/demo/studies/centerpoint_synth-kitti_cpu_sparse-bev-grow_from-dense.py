# As centerpoint_synth-kitti_cpu_sparse-bev_from-dense.py, with each 2D backbone block's
# first conv a regular sparse conv (SparseBEVSECOND grow_per_block): the active pixels grow
# by one 3x3 reach per block, so features reach the empty pixels next to the points.
_base_ = ['./centerpoint_synth-kitti_cpu_sparse-bev_from-dense.py']
model = dict(pts_backbone=dict(grow_per_block=True))
