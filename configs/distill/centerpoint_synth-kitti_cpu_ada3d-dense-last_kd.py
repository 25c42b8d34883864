# Ada3D on the demo CenterPoint with a dense last 2D block, step 2 of 2: detector and
# predictor fine-tuned jointly with the dropping in place (Ada3D's joint step, 6 epochs) from
# step 1 (centerpoint_synth-kitti_cpu_ada3d-dense-last_stage2_from-dense.py), distilled from
# the dense CenterPoint trained on the same schedule (the fair control), with the losses of
# centerpoint_synth-kitti_cpu_ada3d-kd.py.
#   D=configs/distill/centerpoint_synth-kitti_cpu_ada3d-dense-last
#   tools/train_demo_checkpoints.py ${D}_stage2_from-dense.py ${D}_kd.py
_base_ = ['./centerpoint_synth-kitti_cpu_ada3d-kd.py']
model = dict(pts_backbone=dict(dense_blocks=(1, )))
load_from = 'checkpoints/centerpoint_synth-kitti_cpu_ada3d-dense-last_stage2_from-dense.pth'
