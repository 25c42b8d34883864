# Spatial pruning only: the demo SECOND with SPSS-Conv pruning 50 % of the voxels in every
# encoder stage, fine-tuned from the dense demo checkpoint (DM3D paper Tab. 6). SPSS changes
# the features the later layers see (pruned voxels pass their input through), so it needs
# more adaptation than weight pruning: 4 epochs at lr 1e-3 (measured: Car/Ped/Cyc moderate
# 31.7/47.5/42.1, against 10.8/7.7/5.3 after 2 epochs at 2e-4 and 6.2/0.3/2.5 untrained).
_base_ = ['./second_synth-kitti_cpu_finetune.py']
model = dict(middle_encoder=dict(type='SPSSSparseEncoder', prune_ratios=0.5,
                                 importance='magnitude'))
lr = 0.001
finetune_epochs = 4
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=finetune_epochs, eta_min=lr * 0.01, begin=0,
         end=finetune_epochs, by_epoch=True, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=finetune_epochs, val_interval=finetune_epochs)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=finetune_epochs))
