# The demo CenterPoint on a short fine-tune schedule from its dense checkpoint: the base of
# its pruned variants and of the dense-ft control. DM3D's fine-tune recipe
# (configs/_base_/schedules/dm3d_finetune.py) at a learning rate 10x below dense training.
_base_ = ['./centerpoint_synth-kitti_cpu.py', '../_base_/schedules/dm3d_finetune.py']
finetune_lr = 0.0002
finetune_epochs = 2
optim_wrapper = dict(_base_.dm3d_finetune_optim_wrapper, _delete_=True)
optim_wrapper['optimizer'] = dict(optim_wrapper['optimizer'], lr=finetune_lr)
param_scheduler = [dict(_base_.dm3d_finetune_cosine, T_max=finetune_epochs, end=finetune_epochs)]
train_cfg = dict(by_epoch=True, max_epochs=finetune_epochs, val_interval=finetune_epochs)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=finetune_epochs))
load_from = 'checkpoints/centerpoint_synth-kitti_cpu.pth'
