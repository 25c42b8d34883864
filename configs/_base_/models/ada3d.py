# Ada3D's dropping, shared by the detectors' Ada3D configs (prefixed names, as in
# ../schedules/dm3d_finetune.py): 75 % of the non-empty BEV columns kept after 3D stages 2 and
# 4, 50 % of the BEV pixels entering the 2D backbone, ranked by a predictor on a stride-8
# BEV grid. A detector's step-2 config adopts it as its (pts_)middle_encoder.
ada3d_encoder = dict(type='Ada3DSparseEncoder', predictor=dict(feat_channels=16, downsample=8),
                     keep_ratios=dict(stage2=0.75, stage4=0.75, bev=0.5))
# The sparsity-preserving 2D parts of every step (from step 1, so that the detector trains
# with them): a SECOND backbone whose dropped pixels stay exactly zero (SPBN2d: no mean, no
# shift; convs computed at the active BEV pixels only) and the neck's upsampling over the
# active pixels only.
ada3d_backbone = dict(type='SparseBEVSECOND', conv_cfg=dict(type='SparseBEVConv2d', bias=False),
                      norm_cfg=dict(type='SPBN2d', eps=1e-3, momentum=0.01))
ada3d_upsample = dict(type='SparseBEVDeconv2d', bias=False)
