# The fair control for the Ada3D demo CenterPoint: the dense demo CenterPoint trained further
# on exactly the schedule of Ada3D's joint step (centerpoint_synth-kitti_cpu_ada3d.py: 6
# epochs, AdamW at lr 2e-3 with DM3D's cosine decay, norm statistics updating), without any
# dropping. Ada3D's detector saw 12 + 6 epochs (its predictor-only step does not train the
# detector); so does this one.
_base_ = ['../centerpoint_synth-kitti_cpu_finetune.py', '../../_base_/schedules/ada3d_joint.py']
finetune_lr = {{_base_.ada3d_joint_lr}}
finetune_epochs = {{_base_.ada3d_joint_epochs_centerpoint}}
optim_wrapper = dict(optimizer=dict(lr=finetune_lr))
param_scheduler = [dict(_base_.dm3d_finetune_cosine, T_max=finetune_epochs, end=finetune_epochs)]
train_cfg = dict(max_epochs=finetune_epochs, val_interval=finetune_epochs)
default_hooks = dict(checkpoint=dict(interval=finetune_epochs))
