# SPS-Conv at 50 % on the demo CenterPoint, trained the way SPS-Conv trains: from scratch on
# the dense demo CenterPoint's schedule with the pruning in place, voxels ranked by the
# supervised 'foreground' scorers (SPSSCenterPoint's loss_voxel_fg, GT boxes grown by 0.3 m),
# the recipe of the shipped second_synth-kitti_cpu_spss50_fg-margin.py (see
# ../_base_/models/spss_fg.py).
#   tools/train_demo_checkpoints.py configs/demo/centerpoint_synth-kitti_cpu_spss50_fg-margin.py
_base_ = ['./centerpoint_synth-kitti_cpu.py', '../_base_/models/spss_fg.py']
model = dict(
    type='SPSSCenterPoint',
    foreground_loss=dict(margin=0.3),
    pts_middle_encoder={{_base_.spss_fg_encoder}})
