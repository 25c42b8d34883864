# The fair control for centerpoint_synth-kitti_cpu_ada3d_joint12.py (this folder): the dense
# demo CenterPoint trained further on that model's 12-epoch joint step (AdamW at lr 2e-3,
# DM3D's cosine decay, norm statistics updating), without any dropping: 12 + 12 epochs, as
# the Ada3D detector.
_base_ = ['./centerpoint_synth-kitti_cpu_ada3d_control.py']
finetune_epochs = {{_base_.ada3d_joint_epochs}}
param_scheduler = [dict(_base_.dm3d_finetune_cosine, T_max=finetune_epochs, end=finetune_epochs)]
train_cfg = dict(max_epochs=finetune_epochs, val_interval=finetune_epochs)
default_hooks = dict(checkpoint=dict(interval=finetune_epochs))
