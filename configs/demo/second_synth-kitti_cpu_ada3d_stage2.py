# Ada3D step 2 of 3: the BEV importance predictor trained alone against the gaussian centre
# heatmap of the GT boxes (MSE), from the step-1 detector; only the voxel encoder and the
# predictor run, so the detector stays exactly as step 1 left it.
_base_ = ['./second_synth-kitti_cpu_ada3d_stage1.py', '../_base_/schedules/dm3d_finetune.py',
          '../_base_/models/ada3d.py']
model = dict(
    type='Ada3DVoxelNet',
    train_predictor_only=True,
    importance_loss=dict(weight=1.0),
    middle_encoder=_base_.ada3d_encoder)  # Ada3D's dropping locations and ratios
finetune_lr = 0.002
finetune_epochs = 3
optim_wrapper = dict(_base_.dm3d_finetune_optim_wrapper, _delete_=True)
optim_wrapper['optimizer'] = dict(optim_wrapper['optimizer'], lr=finetune_lr)
param_scheduler = [dict(_base_.dm3d_finetune_cosine, T_max=finetune_epochs, end=finetune_epochs)]
train_cfg = dict(by_epoch=True, max_epochs=finetune_epochs, val_interval=finetune_epochs)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=finetune_epochs))
load_from = 'checkpoints/second_synth-kitti_cpu_ada3d_stage1.pth'
