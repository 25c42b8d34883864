# The length and learning rate of Ada3D's joint step (detector + predictor with the dropping
# in place) on the demo detectors, shared with their fair dense controls
# (demo/studies/second_synth-kitti_cpu_ada3d_control.py,
# demo/studies/centerpoint_synth-kitti_cpu_ada3d_control.py)
# so that the two cannot drift apart. Adopted as
#   finetune_lr = {{_base_.ada3d_joint_lr}}; finetune_epochs = {{_base_.ada3d_joint_epochs}}
ada3d_joint_lr = 0.002
ada3d_joint_epochs = 12  # SECOND
# CenterPoint: the CenterPoint ablation's fine-tune length (tools/ablate.py --epochs 6)
ada3d_joint_epochs_centerpoint = 6
