# Ada3D on the demo CenterPoint with a teacher, step 2 of 3: the BEV importance predictor
# trained alone (../demo/centerpoint_synth-kitti_cpu_ada3d_stage2.py; it does not train the
# detector, so no teacher) from step 1 (centerpoint_synth-kitti_cpu_ada3d-kd_stage1.py).
_base_ = ['../demo/centerpoint_synth-kitti_cpu_ada3d_stage2.py']
load_from = 'checkpoints/centerpoint_synth-kitti_cpu_ada3d-kd_stage1.pth'
