# Tab. 1/2 with equal training, DM3D over every layer Ada3D's FLOPs include: as
# second_synth-kitti_cpu_dm3d30_ada3d-schedule.py (DM3D to Ada3D's 0.301 of the dense joint
# FLOPs, Ada3D's 12-epoch joint schedule), but the anchor head's convs are pruned too (the
# ablation's 'all+head' part set: the head runs on the whole BEV map in Ada3D as well, and
# DM3D prunes every layer in the paper), the box term of the distortion on.
#   tools/train.py configs/demo/second_synth-kitti_cpu_dm3d30-head_ada3d-schedule.py
_base_ = ['./second_synth-kitti_cpu_dm3d30_ada3d-schedule.py']
pruning = dict(parts=['middle_encoder', 'backbone', 'neck', 'bbox_head'],
               include_head_outputs=True, lambdas=(1.0, 1.0))
