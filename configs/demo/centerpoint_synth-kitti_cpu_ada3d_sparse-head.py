# The Ada3D CenterPoint (centerpoint_synth-kitti_cpu_ada3d.py, run with its checkpoint
# checkpoints/centerpoint_synth-kitti_cpu_ada3d.pth or the one trained with a teacher,
# checkpoints/centerpoint_synth-kitti_cpu_ada3d-kd.pth) with a neck and head that skip the BEV
# pixels Ada3D dropped (../_base_/models/ada3d_sparse_head.py). The same state_dict keys and
# the same outputs as the Ada3D config; fewer FLOPs counted and run. Training runs the head
# dense (SupportConv2d computes the whole map in training mode).
_base_ = ['./centerpoint_synth-kitti_cpu_ada3d.py', '../_base_/models/ada3d_sparse_head.py']
model = dict(pts_neck=_base_.ada3d_sparse_neck, pts_bbox_head=_base_.ada3d_sparse_head)
