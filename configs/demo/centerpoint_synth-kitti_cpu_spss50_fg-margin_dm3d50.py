# Spatial + weight sparsity on the SPS-Conv CenterPoint (DM3D paper Tab. 6): the demo
# CenterPoint trained with 50 % of the voxels pruned in place
# (centerpoint_synth-kitti_cpu_spss50_fg-margin.py), then DM3D weight pruning to 50 % of the
# joint FLOPs *of the spatially pruned model*, head included, fine-tuned with the masks kept
# on DM3D's schedule (centerpoint_synth-kitti_cpu_dm3d25.py's settings at 0.5).
_base_ = ['./centerpoint_synth-kitti_cpu_dm3d25.py', '../_base_/models/spss_fg.py']
model = dict(
    type='SPSSCenterPoint',
    foreground_loss=dict(margin=0.3),
    pts_middle_encoder={{_base_.spss_fg_encoder}})
pruning = dict(flops_target=0.5)
load_from = 'checkpoints/centerpoint_synth-kitti_cpu_spss50_fg-margin.pth'
