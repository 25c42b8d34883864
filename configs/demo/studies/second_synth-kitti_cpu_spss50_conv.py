# SPS-Conv's own pass-through: pruned voxels skip the conv only, then meet the block's norm
# and activation (whose statistics are fitted to conv outputs); otherwise as
# second_synth-kitti_cpu_spss50.py, on the same schedule (results: docs/spatial.md).
# Not shipped.
_base_ = ['../second_synth-kitti_cpu_spss50.py']
model = dict(middle_encoder=dict(passthrough='conv'))
