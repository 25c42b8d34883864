# DM3D against Ada3D with equal training (Tab. 1/2, fairly): DM3D weight pruning to Ada3D's
# measured joint FLOPs (0.301 of the dense demo SECOND), then fine-tuned on exactly the
# schedule of Ada3D's joint step (configs/_base_/schedules/ada3d_joint.py: 12 epochs, AdamW at
# lr 2e-3, DM3D's cosine decay), so that both detectors saw 20 + 12 epochs; compare with
# second_synth-kitti_cpu_ada3d.py and its dense control second_synth-kitti_cpu_ada3d_control.py.
# DM3D's own recipe otherwise: masks kept exact, BN statistics frozen.
_base_ = ['./second_synth-kitti_cpu_dm3d50.py', '../_base_/schedules/ada3d_joint.py']
finetune_lr = {{_base_.ada3d_joint_lr}}
finetune_epochs = {{_base_.ada3d_joint_epochs}}
optim_wrapper = dict(optimizer=dict(lr=finetune_lr))
param_scheduler = [dict(_base_.dm3d_finetune_cosine, T_max=finetune_epochs, end=finetune_epochs)]
train_cfg = dict(max_epochs=finetune_epochs, val_interval=finetune_epochs)
default_hooks = dict(checkpoint=dict(interval=finetune_epochs))
pruning = dict(flops_target=0.301)
