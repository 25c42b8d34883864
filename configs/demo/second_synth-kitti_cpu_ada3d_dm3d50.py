# Spatial + weight sparsity on Ada3D (DM3D paper Tab. 6): the Ada3D demo SECOND (three steps,
# checkpoints/second_synth-kitti_cpu_ada3d.pth), then DM3D weight pruning to 50 % of the
# joint FLOPs *of the Ada3D model* (the cost model counts only the voxels and BEV pixels
# Ada3D keeps), fine-tuned with the masks kept on DM3D's schedule. The importance predictor
# is never weight-pruned.
#   tools/train.py configs/demo/second_synth-kitti_cpu_ada3d_dm3d50.py   (prune + fine-tune)
_base_ = ['./second_synth-kitti_cpu_ada3d.py']
pruning = dict(type='DM3DPruner', flops_target=0.5, estimator='fisher', num_ratios=16,
               parts=['middle_encoder', 'backbone', 'neck'], calib=dict(frames=16))
custom_hooks = [dict(type='DM3DPruningHook', freeze_norm_stats=True)]
finetune_lr = 0.0002
finetune_epochs = 2
optim_wrapper = dict(optimizer=dict(lr=finetune_lr))
param_scheduler = [dict(_base_.dm3d_finetune_cosine, T_max=finetune_epochs, end=finetune_epochs)]
train_cfg = dict(max_epochs=finetune_epochs, val_interval=finetune_epochs)
default_hooks = dict(checkpoint=dict(interval=finetune_epochs))
load_from = 'checkpoints/second_synth-kitti_cpu_ada3d.pth'
