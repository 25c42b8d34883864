# Ada3D on the demo CenterPoint from the dense weights, step 1 of 2: the BEV importance
# predictor trained alone (Ada3D's step 2: only the voxel encoder and the predictor run, the
# detector's weights do not change) on the dense demo CenterPoint with Ada3D's
# sparsity-preserving 2D part, each 2D block's first conv growing the active pixels. Step 2:
# centerpoint_synth-kitti_cpu_ada3d-grow_kd.py, the joint step with a dense teacher. The
# detector sees the dense 12 epochs + the joint step's 6, the schedule of the fair control
# (../demo/studies/centerpoint_synth-kitti_cpu_ada3d_control.py).
_base_ = ['../demo/centerpoint_synth-kitti_cpu_ada3d_stage2.py']
model = dict(pts_backbone=dict(grow_per_block=True))
load_from = 'checkpoints/centerpoint_synth-kitti_cpu.pth'
