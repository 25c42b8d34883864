# The Ada3D CenterPoint with a dense last 2D block trained from the dense weights with a dense
# teacher (centerpoint_synth-kitti_cpu_ada3d-dense-last_kd.py, checkpoint
# checkpoints/centerpoint_synth-kitti_cpu_ada3d-dense-last_kd.pth), as tools/test.py and
# tools/flops.py run it. Its head input is dense (the last block's upsampled output covers
# every pixel), so a sparse head would compute every pixel too.
_base_ = ['../demo/centerpoint_synth-kitti_cpu_ada3d.py']
model = dict(pts_backbone=dict(dense_blocks=(1, )))
