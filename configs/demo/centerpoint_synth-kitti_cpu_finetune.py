# The demo CenterPoint on a short fine-tune schedule from its dense checkpoint: the base of
# its pruned variants and of the dense-ft control. DM3D paper's fine-tune recipe: AdamW,
# weight decay 0.01, learning rate 10x below dense training.
_base_ = ['./centerpoint_synth-kitti_cpu.py']
lr = 0.0002
finetune_epochs = 2
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=lr, betas=(0.95, 0.99), weight_decay=0.01),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=finetune_epochs, eta_min=lr * 0.01, begin=0,
         end=finetune_epochs, by_epoch=True, convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=finetune_epochs, val_interval=finetune_epochs)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=finetune_epochs))
load_from = 'checkpoints/centerpoint_synth-kitti_cpu.pth'
