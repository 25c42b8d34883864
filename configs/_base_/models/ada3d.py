# Ada3D's dropping, shared by the demo detectors' Ada3D configs (a prefixed name, as in
# ../schedules/dm3d_finetune.py): 75 % of the non-empty BEV columns kept after 3D stages 2 and
# 4, 50 % of the BEV pixels entering the 2D backbone, ranked by a predictor on a stride-8
# BEV grid. A detector's step-2 config adopts it as its (pts_)middle_encoder.
ada3d_encoder = dict(type='Ada3DSparseEncoder', predictor=dict(feat_channels=16, downsample=8),
                     keep_ratios=dict(stage2=0.75, stage4=0.75, bev=0.5))
