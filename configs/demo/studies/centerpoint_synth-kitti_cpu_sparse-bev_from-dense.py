# The Ada3D CenterPoint's sparsity-preserving 2D part alone (step 1's backbone and neck:
# centerpoint_synth-kitti_cpu_ada3d_stage1.py), no dropping, started from the dense demo
# checkpoint and trained on the schedule of the dense fair control
# (centerpoint_synth-kitti_cpu_ada3d_control.py: 6 epochs, lr 2e-3): what keeping the BEV map
# sparse costs a CenterPoint, against that control.
_base_ = ['./centerpoint_synth-kitti_cpu_ada3d_control.py']
model = dict(pts_backbone=dict(type='SparseBEVSECOND',
                               conv_cfg=dict(type='SparseBEVConv2d', bias=False),
                               norm_cfg=dict(type='SPBN2d', eps=1e-3, momentum=0.01)),
             pts_neck=dict(upsample_cfg=dict(type='SparseBEVDeconv2d', bias=False)))
