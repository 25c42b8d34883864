# DM3D's fine-tune recipe, shared by every *_finetune.py config: AdamW (weight decay 0.01),
# gradient clipping, one cosine decay to 1 % of the start learning rate. The names carry a
# `dm3d_finetune_` prefix because mmengine forbids a key defined by two bases and the
# detector's mmdet3d base already defines `optim_wrapper` / `param_scheduler`. A fine-tune
# config adopts them and sets its own learning rate and length:
#   optim_wrapper = dict(_base_.dm3d_finetune_optim_wrapper, _delete_=True)
#   optim_wrapper['optimizer']['lr'] = <lr>
#   param_scheduler = [dict(_base_.dm3d_finetune_cosine, T_max=<epochs>, end=<epochs>)]
dm3d_finetune_optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0002, betas=(0.95, 0.99), weight_decay=0.01),
    clip_grad=dict(max_norm=35, norm_type=2))
dm3d_finetune_cosine = dict(type='CosineAnnealingLR', eta_min_ratio=0.01, begin=0,
                            by_epoch=True, convert_to_iter_based=True)
