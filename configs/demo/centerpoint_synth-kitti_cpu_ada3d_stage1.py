# Ada3D on the demo CenterPoint, step 1 of 3: the detector trained from scratch on the dense
# demo's schedule with a sparsity-preserving 2D backbone (SPBN2d and convs computed at the
# active BEV pixels only, SparseBEVConv2d) and the neck's upsampling over the active pixels
# only (SparseBEVDeconv2d). No pruning yet. Steps 2 and 3:
# centerpoint_synth-kitti_cpu_ada3d_stage2.py and centerpoint_synth-kitti_cpu_ada3d.py.
_base_ = ['./centerpoint_synth-kitti_cpu.py']
model = dict(pts_backbone=dict(type='SparseBEVSECOND',
                               conv_cfg=dict(type='SparseBEVConv2d', bias=False),
                               norm_cfg=dict(type='SPBN2d', eps=1e-3, momentum=0.01)),
             pts_neck=dict(upsample_cfg=dict(type='SparseBEVDeconv2d', bias=False)))
