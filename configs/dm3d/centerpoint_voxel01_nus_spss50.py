# Spatial pruning only, trained the way SPS-Conv trains: mmdet3d's CenterPoint config and
# schedule from scratch (no checkpoint loaded) with SPSS-Conv pruning 50 % of the voxels in
# every encoder stage in place (magnitude importance gating the features, stem and output
# convs dense, pruned voxels skip the whole block; passthrough='conv' is SPS-Conv's own).
# SPS-Conv reports 58.68 against 59.22 mAP for this detector on nuScenes.
_base_ = ['mmdet3d::centerpoint/centerpoint_voxel01_second_secfpn_8xb4-cyclic-20e_nus-3d.py']
custom_imports = dict(imports=['dm3d_mm'], allow_failed_imports=False)
model = dict(pts_middle_encoder=dict(type='SPSSSparseEncoder', prune_ratios=0.5,
                                     importance='magnitude', gate=True, passthrough='block'))
