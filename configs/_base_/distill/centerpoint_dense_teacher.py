# The dense demo CenterPoint as a frozen teacher (DistillationHook reads this section): its
# CenterHead's heatmaps over the teacher's peaks and its regression maps where it is
# confident, and its BEV features over the pixels the student keeps, added to the GT losses
# (the weights of dm3d_mm/studies/cells.py's CenterPoint study). A config that trains on
# another schedule names the dense model trained on that schedule as the checkpoint.
distill = dict(
    teacher=dict(config='configs/demo/centerpoint_synth-kitti_cpu.py',
                 checkpoint='checkpoints/centerpoint_synth-kitti_cpu.pth'),
    losses=[dict(type='center_head_response', loss_weight=2.0, box_weight=0.25, cls_norm='peaks'),
            dict(type='bev_feature', loss_weight=0.5, region='active')])
