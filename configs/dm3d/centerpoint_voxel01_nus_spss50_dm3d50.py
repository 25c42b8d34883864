# DM3D weight pruning to 0.5 of the joint FLOPs on top of a trained SPSS-Conv CenterPoint
# (centerpoint_voxel01_nus_spss50.py): the detector's fine-tune base with the same spatial
# pruning, pruned at the start of training (or loaded from tools/prune.py) and fine-tuned
# with the masks kept by DM3DPruningHook. Set load_from to the trained SPSS checkpoint.
_base_ = ['./centerpoint_voxel01_nus_finetune.py']
model = dict(pts_middle_encoder=dict(type='SPSSSparseEncoder', prune_ratios=0.5,
                                     importance='magnitude', gate=True, passthrough='block'))
pruning = dict(type='DM3DPruner', flops_target=0.5, estimator='fisher', num_ratios=32,
               parts=['pts_middle_encoder', 'pts_backbone', 'pts_neck', 'pts_bbox_head'],
               lambdas=(1.0, 1.0), calib=dict(frames=64))
# CenterHead holds about 40 % of CenterPoint's joint FLOPs (0.385 at voxel 0.075), most of it
# in the regression branches: without the head, 0.25 is below the floor. Its regression
# branches are pruned only if their outputs are measured, hence lambda_b > 0 (box terms
# weighted by the heatmap confidence).
custom_hooks = [dict(type='DM3DPruningHook')]
