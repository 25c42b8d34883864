# The paper's headline setting on the demo CenterPoint: DM3D weight pruning to 25 % of the
# joint FLOPs, pruned at the start of training from the dense demo checkpoint (or loaded from
# a tools/prune.py checkpoint), then fine-tuned with the masks kept exact by
# DM3DPruningHook. y = the CenterHead outputs (CenterHeadOutputs, chosen automatically).
# The head holds about half of this small detector's joint FLOPs, most of it in the
# regression branches (reg, height, dim, rot of each task): they are pruned only if their
# outputs are measured, hence lambda_b > 0 (box terms weighted by the heatmap confidence).
_base_ = ['./centerpoint_synth-kitti_cpu_finetune.py']
pruning = dict(type='DM3DPruner', flops_target=0.25, estimator='fisher', num_ratios=16,
               parts=['pts_middle_encoder', 'pts_backbone', 'pts_neck', 'pts_bbox_head'],
               lambdas=(1.0, 1.0), calib=dict(frames=16))
custom_hooks = [dict(type='DM3DPruningHook', freeze_norm_stats=True)]
