# Binarised-PFN ablation row: full precision (the control: the same two-layer encoder and
# schedule).
_base_ = ['../pointpillars_synth-kitti_cpu_bipfn.py']
model = dict(voxel_encoder=dict(binary=dict(enabled=False)))
