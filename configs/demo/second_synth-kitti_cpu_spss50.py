# Spatial pruning only: the demo SECOND with SPSS-Conv pruning 50 % of the voxels in every
# encoder stage, fine-tuned briefly from the dense demo checkpoint (DM3D paper Tab. 6).
_base_ = ['./second_synth-kitti_cpu_finetune.py']
model = dict(middle_encoder=dict(type='SPSSSparseEncoder', prune_ratios=0.5,
                                 importance='magnitude'))
