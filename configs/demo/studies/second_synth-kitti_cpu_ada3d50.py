# Spatial pruning only, Ada3D style: a BEV importance predictor (trained against a gaussian
# centre heatmap of the GT boxes) keeps the top 50 % of non-empty BEV columns at the encoder
# input and 50 % of the BEV pixels entering the 2D backbone, which runs Sparsity-Preserving
# BN and submanifold-style convs so pruned pixels stay zero. Fine-tuned from the dense demo.
_base_ = ['../second_synth-kitti_cpu_finetune.py']
model = dict(
    type='Ada3DVoxelNet',
    importance_loss=dict(weight=1.0),
    middle_encoder=dict(type='Ada3DSparseEncoder',
                        predictor=dict(feat_channels=16, downsample=8),
                        keep_ratios=dict(input=0.5, bev=0.5)),
    backbone=dict(type='SparseBEVSECOND',
                  conv_cfg=dict(type='SparseBEVConv2d', bias=False),
                  norm_cfg=dict(type='SPBN2d', eps=1e-3, momentum=0.01)))
