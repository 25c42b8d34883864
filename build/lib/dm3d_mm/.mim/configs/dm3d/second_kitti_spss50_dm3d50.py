# DM3D weight pruning to 0.5 of the joint FLOPs, pruned at the start of training (or loaded
# from tools/prune.py) and fine-tuned with the masks kept by DM3DPruningHook.
_base_ = ['./second_kitti_spss50.py']
pruning = dict(type='DM3DPruner', flops_target=0.5, estimator='fisher', num_ratios=32,
               parts=['middle_encoder', 'backbone', 'neck'], calib=dict(frames=64))
custom_hooks = [dict(type='DM3DPruningHook')]
