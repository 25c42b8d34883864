# The Ada3D CenterPoint (centerpoint_synth-kitti_cpu_ada3d.py, run with its checkpoint
# checkpoints/centerpoint_synth-kitti_cpu_ada3d.pth) with a neck and head that skip the BEV
# pixels Ada3D dropped: the neck's unstrided 1x1 branch and its upsampling compute the active
# pixels only (SparseBEVSECONDFPN with SparseBEVConv2d, which tells the head which pixels
# hold the one background vector), and the CenterHead's shared conv computes only the pixels
# whose 3x3 windows reach them or the map's border (SupportConv2d, SupportBN2d; the task
# branches stay dense: on a CPU their narrow windows cost as much to gather as they save). The
# same state_dict keys and the same outputs as the Ada3D config; fewer FLOPs counted and run.
_base_ = ['./centerpoint_synth-kitti_cpu_ada3d.py']
support_conv = dict(type='SupportConv2d')
support_norm = dict(type='SupportBN2d')
model = dict(
    pts_neck=dict(type='SparseBEVSECONDFPN', conv_cfg=dict(type='SparseBEVConv2d', bias=False)),
    pts_bbox_head=dict(conv_cfg=support_conv, norm_cfg=support_norm))
