# Spatial pruning only, trained the way SPS-Conv trains: the demo SECOND from scratch on
# the dense demo's schedule with SPSS-Conv pruning 50 % of the voxels in every encoder
# stage in place. SPS-Conv's choices: magnitude importance sigmoid(mean |f|) that also
# multiplies the features (a soft gate, so training shapes what is important), pruned
# voxels skip the conv only, stem `conv_input` and `conv_out` dense (they are outside the
# encoder stages). Shipped as checkpoints/second_synth-kitti_cpu_spss50.pth.
_base_ = ['./second_synth-kitti_cpu.py']
model = dict(middle_encoder=dict(type='SPSSSparseEncoder', prune_ratios=0.5,
                                 importance='magnitude', gate=True, passthrough='conv'))
