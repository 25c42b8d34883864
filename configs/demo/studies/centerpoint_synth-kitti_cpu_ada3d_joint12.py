# Ada3D on the demo CenterPoint with the joint step of the Ada3D SECOND: step 3 of 3
# (../centerpoint_synth-kitti_cpu_ada3d.py) run for 12 epochs instead of 6, from the same step-2
# checkpoint, with the same dropping, learning rate and cosine decay. The detector sees
# 12 + 12 epochs; its fair control is centerpoint_synth-kitti_cpu_ada3d_joint12_control.py.
_base_ = ['../centerpoint_synth-kitti_cpu_ada3d.py']
finetune_epochs = {{_base_.ada3d_joint_epochs}}
param_scheduler = [dict(_base_.dm3d_finetune_cosine, T_max=finetune_epochs, end=finetune_epochs)]
train_cfg = dict(max_epochs=finetune_epochs, val_interval=finetune_epochs)
default_hooks = dict(checkpoint=dict(interval=finetune_epochs))
