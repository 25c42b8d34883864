# Spatial + weight sparsity (DM3D paper Tab. 6): SPSS-Conv pruning of 50 % of the voxels,
# then DM3D weight pruning to 50 % of the joint FLOPs *of the spatially pruned model* (the
# cost model counts only the pairs SPSS computes), fine-tuned with the masks kept.
#   tools/prune.py configs/demo/second_synth-kitti_cpu_spss50_dm3d50.py \
#       --checkpoint checkpoints/second_synth-kitti_cpu.pth      (prune only), or
#   tools/train.py configs/demo/second_synth-kitti_cpu_spss50_dm3d50.py   (prune + fine-tune)
_base_ = ['./second_synth-kitti_cpu_spss50.py']
pruning = dict(type='DM3DPruner', flops_target=0.5, estimator='fisher', num_ratios=16,
               parts=['middle_encoder', 'backbone', 'neck'], calib=dict(frames=16))
custom_hooks = [dict(type='DM3DPruningHook')]
