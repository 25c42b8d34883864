# SPS-Conv at 50 % with the supervised voxel ranking of second_synth-kitti_cpu_spss50_fg.py,
# the scorers' foreground grown by 0.3 m around every GT box (in x, y and z): the voxels
# just around an object (its ground, its near background) rank with the object, as context
# the detector keeps. Same schedule (the dense demo's, from scratch); results:
# docs/spatial.md. Shipped as checkpoints/second_synth-kitti_cpu_spss50_fg-margin.pth.
_base_ = ['./second_synth-kitti_cpu_spss50_fg.py']
model = dict(foreground_loss=dict(margin=0.3))
