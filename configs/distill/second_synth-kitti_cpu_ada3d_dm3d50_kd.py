# Distillation-aware recovery of the pruned Ada3D SECOND: the fine-tune of
# ../demo/second_synth-kitti_cpu_ada3d_dm3d50.py (masks kept by DM3DPruningHook) with the dense
# demo SECOND as a frozen teacher: its anchor head's responses and its BEV features (over the
# pixels the student keeps) added to the GT losses.
#   tools/train.py configs/distill/second_synth-kitti_cpu_ada3d_dm3d50_kd.py \
#       --cfg-options load_from=work_dirs/joint10/pruned.pth
_base_ = ['../demo/second_synth-kitti_cpu_ada3d_dm3d50.py']
distill = dict(
    teacher=dict(config='configs/demo/second_synth-kitti_cpu.py',
                 checkpoint='checkpoints/second_synth-kitti_cpu.pth'),
    losses=[dict(type='anchor_head_response', loss_weight=1.0),
            dict(type='bev_feature', loss_weight=1.0, region='active')])
custom_hooks = [dict(type='DM3DPruningHook', freeze_norm_stats=True),
                dict(type='DistillationHook')]
