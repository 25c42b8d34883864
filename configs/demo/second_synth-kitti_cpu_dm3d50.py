# Weight pruning only: DM3D to 50 % of the joint FLOPs, pruned at the start of training from
# the dense demo checkpoint (or loaded from a tools/prune.py checkpoint), then fine-tuned with
# the masks kept exact by DM3DPruningHook.
_base_ = ['./second_synth-kitti_cpu_finetune.py']
pruning = dict(type='DM3DPruner', flops_target=0.5, estimator='fisher', num_ratios=16,
               parts=['middle_encoder', 'backbone', 'neck'], calib=dict(frames=16))
# frozen BN statistics: a short fine-tune of a pruned model keeps the dense statistics
# (measured against updating them: docs/ablation.md, Tab. 4 and Tab. 5)
custom_hooks = [dict(type='DM3DPruningHook', freeze_norm_stats=True)]
