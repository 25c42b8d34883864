# Spatial pruning only: SPSS-Conv drops 50 % of the voxels in every encoder stage
# (same weights and keys as SparseEncoder, so a dense checkpoint loads).
_base_ = ['./second_kitti_finetune.py']
model = dict(middle_encoder=dict(type='SPSSSparseEncoder', prune_ratios=0.5, importance='magnitude'))
