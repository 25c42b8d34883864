# Binarised-PFN ablation row: naive sign binarisation (plain max pooling, no scale recovery).
_base_ = ['../pointpillars_synth-kitti_cpu_bipfn.py']
model = dict(voxel_encoder=dict(binary=dict(ema=False, lsr=False)))
