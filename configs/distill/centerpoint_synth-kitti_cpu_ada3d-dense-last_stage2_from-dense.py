# Ada3D on the demo CenterPoint from the dense weights with a dense last 2D block, step 1 of
# 2: the BEV importance predictor trained alone (only the voxel encoder and the predictor
# run) on the dense demo CenterPoint whose first 2D block is sparsity-preserving (SPBN, convs
# at the kept pixels) and whose last block stays mmdet3d's dense one: it computes every pixel
# of its stride-2 map, so its upsampled output reaches the head at the dropped pixels too.
# Step 2: centerpoint_synth-kitti_cpu_ada3d-dense-last_kd.py, the joint step with a teacher.
_base_ = ['../demo/centerpoint_synth-kitti_cpu_ada3d_stage2.py']
model = dict(pts_backbone=dict(dense_blocks=(1, )))
load_from = 'checkpoints/centerpoint_synth-kitti_cpu.pth'
