# Ada3D on the demo CenterPoint from the dense weights, step 2 of 2: detector and predictor
# fine-tuned jointly with the dropping in place (Ada3D's joint step,
# ../demo/centerpoint_synth-kitti_cpu_ada3d.py: 6 epochs) and each 2D block's first conv
# growing the active pixels, from step 1
# (centerpoint_synth-kitti_cpu_ada3d-grow_stage2_from-dense.py), with the frozen dense teacher
# and losses of centerpoint_synth-kitti_cpu_ada3d-kd.py (the fair control).
#   D=configs/distill/centerpoint_synth-kitti_cpu_ada3d-grow
#   tools/train_demo_checkpoints.py ${D}_stage2_from-dense.py ${D}_kd.py
# writes checkpoints/centerpoint_synth-kitti_cpu_ada3d-grow_kd.pth (the spatial model
# 'ada3d-grow_sparse-head' of tools/ablate.py).
_base_ = ['./centerpoint_synth-kitti_cpu_ada3d-kd.py']
model = dict(pts_backbone=dict(grow_per_block=True))
load_from = 'checkpoints/centerpoint_synth-kitti_cpu_ada3d-grow_stage2_from-dense.pth'
