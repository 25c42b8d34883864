# Spatial + weight sparsity (DM3D paper Tab. 6): the SPSS-Conv demo SECOND (trained with 50 %
# of the voxels pruned in place, checkpoints/second_synth-kitti_cpu_spss50.pth), then DM3D
# weight pruning to 50 % of the joint FLOPs *of the spatially pruned model* (the cost model
# counts only the pairs SPSS computes), fine-tuned with the masks kept on DM3D's schedule.
#   tools/prune.py configs/demo/second_synth-kitti_cpu_spss50_dm3d50.py \
#       --checkpoint checkpoints/second_synth-kitti_cpu_spss50.pth     (prune only), or
#   tools/train.py configs/demo/second_synth-kitti_cpu_spss50_dm3d50.py   (prune + fine-tune)
_base_ = ['./second_synth-kitti_cpu_spss50.py', '../_base_/schedules/dm3d_finetune.py']
pruning = dict(type='DM3DPruner', flops_target=0.5, estimator='fisher', num_ratios=16,
               parts=['middle_encoder', 'backbone', 'neck'], calib=dict(frames=16))
custom_hooks = [dict(type='DM3DPruningHook', freeze_norm_stats=True)]
finetune_lr = 0.0002
finetune_epochs = 2
optim_wrapper = dict(_base_.dm3d_finetune_optim_wrapper, _delete_=True)
optim_wrapper['optimizer'] = dict(optim_wrapper['optimizer'], lr=finetune_lr)
param_scheduler = [dict(_base_.dm3d_finetune_cosine, T_max=finetune_epochs, end=finetune_epochs)]
train_cfg = dict(by_epoch=True, max_epochs=finetune_epochs, val_interval=finetune_epochs)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=finetune_epochs))
load_from = 'checkpoints/second_synth-kitti_cpu_spss50.pth'
