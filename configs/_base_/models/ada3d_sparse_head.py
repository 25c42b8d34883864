# A CenterPoint neck and head that skip the BEV pixels Ada3D dropped, shared by the Ada3D
# CenterPoint's sparse-head configs (prefixed names, as in ./ada3d.py): the neck's unstrided
# 1x1 branch and its upsampling compute the active pixels only (SparseBEVSECONDFPN with
# SparseBEVConv2d, which tells the head which pixels hold the one background vector), and the
# CenterHead's shared conv computes only the pixels whose 3x3 windows reach them or the map's
# border (SupportConv2d, SupportBN2d). The task branches stay dense: on a CPU their narrow
# windows cost as much to gather as they save. Adopted as
#   model = dict(pts_neck=_base_.ada3d_sparse_neck, pts_bbox_head=_base_.ada3d_sparse_head)
ada3d_sparse_neck = dict(type='SparseBEVSECONDFPN',
                         conv_cfg=dict(type='SparseBEVConv2d', bias=False))
ada3d_sparse_head = dict(conv_cfg=dict(type='SupportConv2d'), norm_cfg=dict(type='SupportBN2d'))
