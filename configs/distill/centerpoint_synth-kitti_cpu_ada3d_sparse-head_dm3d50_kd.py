# Distillation-aware recovery of the pruned sparse-head Ada3D CenterPoint: the fine-tune of
# ../demo/centerpoint_synth-kitti_cpu_ada3d_sparse-head_dm3d50.py (masks kept) with the dense
# demo CenterPoint as a frozen teacher: its CenterHead's heatmaps and regression maps and its
# BEV features (over the pixels the student keeps) added to the GT losses.
#   tools/train.py configs/distill/centerpoint_synth-kitti_cpu_ada3d_sparse-head_dm3d50_kd.py \
#       --cfg-options load_from=PRUNED.pth
_base_ = ['../demo/centerpoint_synth-kitti_cpu_ada3d_sparse-head_dm3d50.py',
          '../_base_/distill/centerpoint_dense_teacher.py']
custom_hooks = [dict(type='DM3DPruningHook', freeze_norm_stats=True),
                dict(type='DistillationHook')]
