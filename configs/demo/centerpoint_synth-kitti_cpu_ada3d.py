# Ada3D on the demo CenterPoint, step 3 of 3: detector and predictor fine-tuned jointly with
# the dropping in place (75 % of the non-empty BEV columns kept after 3D stages 2 and 4,
# 50 % of the BEV pixels in the 2D backbone), from the step-2 checkpoint. Ada3D's joint lr;
# 6 epochs, the CenterPoint ablation's fine-tune length (tools/ablate.py --epochs 6), so that
# Ada3D's detector and DM3D's see the same 12 + 6 epochs (SECOND's joint step: 12).
_base_ = ['./centerpoint_synth-kitti_cpu_ada3d_stage2.py', '../_base_/schedules/ada3d_joint.py']
model = dict(train_predictor_only=False)
finetune_lr = {{_base_.ada3d_joint_lr}}
finetune_epochs = {{_base_.ada3d_joint_epochs_centerpoint}}
optim_wrapper = dict(optimizer=dict(lr=finetune_lr))
param_scheduler = [dict(_base_.dm3d_finetune_cosine, T_max=finetune_epochs, end=finetune_epochs)]
train_cfg = dict(max_epochs=finetune_epochs, val_interval=finetune_epochs)
default_hooks = dict(checkpoint=dict(interval=finetune_epochs))
load_from = 'checkpoints/centerpoint_synth-kitti_cpu_ada3d_stage2.pth'
