# The alternative to SPS-Conv's pass-through: pruned voxels skip the whole conv-norm-act
# block (SPSSBlock), not the conv alone; otherwise as second_synth-kitti_cpu_spss50.py.
_base_ = ['./second_synth-kitti_cpu_spss50.py']
model = dict(middle_encoder=dict(passthrough='block'))
