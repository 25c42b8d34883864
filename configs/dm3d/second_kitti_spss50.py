# Spatial pruning only, trained the way SPS-Conv trains: mmdet3d's SECOND config and schedule
# from scratch (no checkpoint loaded) with SPSS-Conv pruning 50 % of the voxels in every
# encoder stage in place: magnitude importance that also gates the features, stem and
# output convs dense, pruned voxels skip the whole conv-norm-act block (the demo's measured
# better choice; passthrough='conv' is SPS-Conv's own). Same weights and keys as
# SparseEncoder.
_base_ = ['mmdet3d::second/second_hv_secfpn_8xb6-80e_kitti-3d-3class.py']
custom_imports = dict(imports=['dm3d_mm'], allow_failed_imports=False)
model = dict(middle_encoder=dict(type='SPSSSparseEncoder', prune_ratios=0.5,
                                 importance='magnitude', gate=True, passthrough='block'))
