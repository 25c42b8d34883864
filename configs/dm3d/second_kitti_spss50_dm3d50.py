# DM3D weight pruning to 0.5 of the joint FLOPs on top of a trained SPSS-Conv SECOND
# (second_kitti_spss50.py): the detector's fine-tune base with the same spatial pruning,
# pruned at the start of training (or loaded from tools/prune.py) and fine-tuned with the
# masks kept by DM3DPruningHook. Set load_from to the trained SPSS checkpoint.
_base_ = ['./second_kitti_finetune.py']
model = dict(middle_encoder=dict(type='SPSSSparseEncoder', prune_ratios=0.5,
                                 importance='magnitude', gate=True, passthrough='block'))
pruning = dict(type='DM3DPruner', flops_target=0.5, estimator='fisher', num_ratios=32,
               parts=['middle_encoder', 'backbone', 'neck'], calib=dict(frames=64))
custom_hooks = [dict(type='DM3DPruningHook')]
