# Spatial pruning only, trained the way SPS-Conv trains: the demo SECOND from scratch on the
# dense demo's schedule with SPSS-Conv pruning 50 % of the voxels in every encoder stage in
# place: magnitude importance sigmoid(mean |f|) that also multiplies the features (a soft
# gate, so training shapes what is important), stem `conv_input` and `conv_out` dense. One
# change from SPS-Conv, measured better on this benchmark: pruned voxels skip the whole
# conv-norm-act block ('block'), not the conv alone ('conv', SPS-Conv's own choice:
# studies/second_synth-kitti_cpu_spss50_conv.py). Results: docs/spatial.md.
# Shipped as checkpoints/second_synth-kitti_cpu_spss50.pth.
_base_ = ['./second_synth-kitti_cpu.py']
model = dict(middle_encoder=dict(type='SPSSSparseEncoder', prune_ratios=0.5,
                                 importance='magnitude', gate=True, passthrough='block'))
