# DM3D weight pruning to 0.25 of the joint FLOPs, pruned at the start of training (or loaded
# from tools/prune.py) and fine-tuned with the masks kept by DM3DPruningHook.
_base_ = ['./centerpoint_voxel0075_nus_finetune.py']
pruning = dict(type='DM3DPruner', flops_target=0.25, estimator='fisher', num_ratios=32,
               parts=['pts_middle_encoder', 'pts_backbone', 'pts_neck'], calib=dict(frames=64))
custom_hooks = [dict(type='DM3DPruningHook')]
