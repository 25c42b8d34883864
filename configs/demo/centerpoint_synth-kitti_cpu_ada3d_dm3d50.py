# Spatial + weight sparsity on the Ada3D CenterPoint (DM3D paper Tab. 6): DM3D weight pruning
# to 50 % of the joint FLOPs of the Ada3D model, head included (box terms measured, as in
# centerpoint_synth-kitti_cpu_dm3d25.py), fine-tuned with the masks kept on DM3D's schedule.
_base_ = ['./centerpoint_synth-kitti_cpu_ada3d.py']
pruning = dict(type='DM3DPruner', flops_target=0.5, estimator='fisher', num_ratios=16,
               parts=['pts_middle_encoder', 'pts_backbone', 'pts_neck', 'pts_bbox_head'],
               lambdas=(1.0, 1.0), calib=dict(frames=16))
custom_hooks = [dict(type='DM3DPruningHook', freeze_norm_stats=True)]
finetune_lr = 0.0002
finetune_epochs = 2
optim_wrapper = dict(optimizer=dict(lr=finetune_lr))
param_scheduler = [dict(_base_.dm3d_finetune_cosine, T_max=finetune_epochs, end=finetune_epochs)]
train_cfg = dict(max_epochs=finetune_epochs, val_interval=finetune_epochs)
default_hooks = dict(checkpoint=dict(interval=finetune_epochs))
load_from = 'checkpoints/centerpoint_synth-kitti_cpu_ada3d.pth'
