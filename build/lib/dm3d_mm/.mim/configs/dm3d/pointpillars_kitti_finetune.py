# Fine-tune base for pruned variants of mmdet3d's own config (DM3D paper recipe:
# AdamW, weight decay 0.01, learning rate 10x below dense training); set load_from to the
# dense checkpoint you prune (or to a tools/prune.py output).
_base_ = ['mmdet3d::pointpillars/pointpillars_hv_secfpn_8xb6-160e_kitti-3d-3class.py']
custom_imports = dict(imports=['dm3d_mm'], allow_failed_imports=False)
finetune_lr = 0.0001
finetune_epochs = 10
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=finetune_lr, betas=(0.95, 0.99), weight_decay=0.01),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=finetune_epochs, eta_min=finetune_lr * 0.01, begin=0,
         end=finetune_epochs, by_epoch=True, convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=finetune_epochs, val_interval=finetune_epochs)
