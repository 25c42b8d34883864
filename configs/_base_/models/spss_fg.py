# SPS-Conv at 50 % with the supervised 'foreground' voxel ranking, shared by the demo
# detectors' SPSS configs (a prefixed name, as in ./ada3d.py): 50 % of the voxels of every
# encoder stage pruned (stem and conv_out dense), ranked per layer by a linear scorer that
# the detector (SPSSVoxelNet / SPSSCenterPoint, loss_voxel_fg) trains against the GT boxes;
# no gate (the scores only choose the voxels); pruned voxels skip the whole conv-norm-act
# block. A detector's config adopts it as its (pts_)middle_encoder.
spss_fg_encoder = dict(type='SPSSSparseEncoder', prune_ratios=0.5, importance='foreground',
                       gate=False, passthrough='block')
