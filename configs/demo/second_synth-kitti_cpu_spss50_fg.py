# SPS-Conv at 50 % with a supervised voxel ranking: the demo SECOND trained from scratch on
# the dense demo's schedule with SPSS-Conv pruning in place (50 % of the voxels of every
# encoder stage, stem and conv_out dense, 'block' pass-through) as in
# second_synth-kitti_cpu_spss50.py, but the voxels are ranked by a linear 'foreground'
# scorer per layer trained against the GT boxes (SPSSVoxelNet's loss_voxel_fg) instead of
# SPS-Conv's sigmoid(mean |f|), which on this benchmark barely separates object voxels
# from the rest. No gate: the scores only choose the voxels.
_base_ = ['./second_synth-kitti_cpu.py', '../_base_/models/spss_fg.py']
model = dict(
    type='SPSSVoxelNet',
    foreground_loss=dict(weight=1.0),
    middle_encoder={{_base_.spss_fg_encoder}})
