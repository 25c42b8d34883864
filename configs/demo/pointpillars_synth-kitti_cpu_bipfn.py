# The demo PointPillars with a BiPointNet-style binarised pillar encoder (sign weights and
# activations, Entropy-Maximising Aggregation, Layer-wise Scale Recovery), fine-tuned from
# the full-precision demo checkpoint. The seed's ablation rows differ only in `binary`:
#   studies/*_bipfn_fp.py (full precision), *_bipfn_sign.py (naive sign), *_bipfn_ema.py (+ EMA),
#   this file (+ EMA + LSR).
# The PFN gets a second layer (feat_channels [64, 32]): its first layer keeps the demo
# checkpoint's shapes (32 units + their pooled max) and full-precision inputs (the raw
# point decorations), the new second layer takes the signs of the first one's output, so
# aggregation (EMA) and scale (LSR) matter, as they do inside BiPointNet's PointNet.
_base_ = ['./pointpillars_synth-kitti_cpu.py', '../_base_/schedules/dm3d_finetune.py']

binary = dict(ema=True, lsr=True)
model = dict(voxel_encoder=dict(type='BinaryPillarFeatureNet', feat_channels=[64, 32],
                                binary=binary))

# binarised layers need a larger step than DM3D's weight fine-tune (BiPointNet: Adam 1e-3)
finetune_lr = 0.001
finetune_epochs = 3
optim_wrapper = dict(_base_.dm3d_finetune_optim_wrapper, _delete_=True)
optim_wrapper['optimizer'] = dict(optim_wrapper['optimizer'], lr=finetune_lr)
param_scheduler = [dict(_base_.dm3d_finetune_cosine, T_max=finetune_epochs, end=finetune_epochs)]
train_cfg = dict(by_epoch=True, max_epochs=finetune_epochs, val_interval=finetune_epochs)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=finetune_epochs))
load_from = 'checkpoints/pointpillars_synth-kitti_cpu.pth'
