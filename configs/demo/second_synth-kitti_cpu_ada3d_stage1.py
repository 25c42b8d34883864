# Ada3D step 1 of 3: the demo SECOND trained from scratch on the dense demo's schedule with
# a sparsity-preserving 2D backbone: Sparsity-Preserving BN (SPBN2d: no mean, no shift) and
# convs computed at the active BEV pixels only (SparseBEVConv2d), so a dropped pixel stays
# exactly zero. The neck's upsampling runs over the active pixels only (SparseBEVDeconv2d:
# the dense layer's values, inactive pixels skipped); in eval the neck's blocks and the
# head's 1x1 convs compute the active pixels only and write the constant background output
# once (SparseBEVSECONDFPN, SparseBEVAnchor3DHead: same values and state_dict keys as
# SECONDFPN and Anchor3DHead; training runs their own forwards). No pruning yet. Steps 2 and 3:
# second_synth-kitti_cpu_ada3d_stage2.py and second_synth-kitti_cpu_ada3d.py.
_base_ = ['./second_synth-kitti_cpu.py']
model = dict(backbone=dict(type='SparseBEVSECOND',
                           conv_cfg=dict(type='SparseBEVConv2d', bias=False),
                           norm_cfg=dict(type='SPBN2d', eps=1e-3, momentum=0.01)),
             neck=dict(type='SparseBEVSECONDFPN',
                       upsample_cfg=dict(type='SparseBEVDeconv2d', bias=False)),
             bbox_head=dict(type='SparseBEVAnchor3DHead'))
