# Binarised-PFN ablation row: binarised + Entropy-Maximising Aggregation, no scale recovery.
_base_ = ['../pointpillars_synth-kitti_cpu_bipfn.py']
model = dict(voxel_encoder=dict(binary=dict(ema=True, lsr=False)))
