# Spatial + weight sparsity (DM3D paper Tab. 6) on the shipped SPS-Conv SECOND with the
# supervised voxel ranking and its 0.3 m margin (second_synth-kitti_cpu_spss50_fg-margin.py),
# then DM3D weight pruning to 50 % of the joint FLOPs *of the spatially pruned model* (the
# cost model counts only the pairs SPSS computes), fine-tuned with the masks kept on DM3D's
# schedule (second_synth-kitti_cpu_dm3d50.py's settings).
#   tools/train.py configs/demo/second_synth-kitti_cpu_spss50_fg-margin_dm3d50.py
#   (prune + fine-tune)
_base_ = ['./second_synth-kitti_cpu_dm3d50.py', '../_base_/models/spss_fg.py']
model = dict(
    type='SPSSVoxelNet',
    foreground_loss=dict(margin=0.3),
    middle_encoder={{_base_.spss_fg_encoder}})
load_from = 'checkpoints/second_synth-kitti_cpu_spss50_fg-margin.pth'
