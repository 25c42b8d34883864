# DM3D against Ada3D with equal training (Tab. 1/2, fairly): DM3D weight pruning to Ada3D's
# measured joint FLOPs (0.301 of the dense demo SECOND), then fine-tuned on exactly the
# schedule of Ada3D's joint step and of its dense control (second_synth-kitti_cpu_ada3d.py,
# second_synth-kitti_cpu_ada3d_control.py: 12 epochs, AdamW at lr 2e-3, DM3D's cosine decay),
# so that all three detectors saw 20 + 12 epochs. DM3D's own recipe otherwise (as
# second_synth-kitti_cpu_dm3d50.py): masks kept exact, BN statistics frozen.
_base_ = ['./second_synth-kitti_cpu_ada3d_control.py']
pruning = dict(type='DM3DPruner', flops_target=0.301, estimator='fisher', num_ratios=16,
               parts=['middle_encoder', 'backbone', 'neck'], calib=dict(frames=16))
custom_hooks = [dict(type='DM3DPruningHook', freeze_norm_stats=True)]
