# Fine-tune base for pruned variants of mmdet3d's own config: DM3D's recipe from
# configs/_base_/schedules/dm3d_finetune.py at this detector's learning rate (10x below
# its dense training) and length; set load_from to the dense checkpoint you prune (or to a
# tools/prune.py output).
_base_ = ['mmdet3d::centerpoint/centerpoint_voxel01_second_secfpn_8xb4-cyclic-20e_nus-3d.py',
          '../_base_/schedules/dm3d_finetune.py']
custom_imports = dict(imports=['dm3d_mm'], allow_failed_imports=False)
finetune_lr = 0.00001
finetune_epochs = 5
optim_wrapper = dict(_base_.dm3d_finetune_optim_wrapper, _delete_=True)
optim_wrapper['optimizer'] = dict(optim_wrapper['optimizer'], lr=finetune_lr)
param_scheduler = [dict(_base_.dm3d_finetune_cosine, T_max=finetune_epochs, end=finetune_epochs)]
train_cfg = dict(by_epoch=True, max_epochs=finetune_epochs, val_interval=finetune_epochs)
