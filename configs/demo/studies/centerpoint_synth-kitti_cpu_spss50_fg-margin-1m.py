# SPS-Conv at 50 % on the demo CenterPoint with the foreground grown by 1.0 m instead of 0.3 m
# (centerpoint_synth-kitti_cpu_spss50_fg-margin.py otherwise): the spatial CenterPoints place
# boxes too high or low in z while their BEV AP holds (docs/spatial.md); CenterHead
# regresses z at the object's centre pixel, so the ground around an object is kept as its
# context here. Trained from scratch on the dense CenterPoint's schedule.
#   tools/train_demo_checkpoints.py configs/demo/centerpoint_synth-kitti_cpu_spss50_fg-margin1.py
_base_ = ['../centerpoint_synth-kitti_cpu_spss50_fg-margin.py']
model = dict(foreground_loss=dict(margin=1.0))
