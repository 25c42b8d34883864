# DM3D on the sparse-head Ada3D CenterPoint (centerpoint_synth-kitti_cpu_ada3d_sparse-head.py):
# the pruning and fine-tune schedule of centerpoint_synth-kitti_cpu_ada3d_dm3d50.py on the
# model whose neck and head skip the dropped BEV pixels, so that the budget is a fraction of
# the FLOPs it runs.
_base_ = ['./centerpoint_synth-kitti_cpu_ada3d_dm3d50.py', '../_base_/models/ada3d_sparse_head.py']
model = dict(pts_neck=_base_.ada3d_sparse_neck, pts_bbox_head=_base_.ada3d_sparse_head)
