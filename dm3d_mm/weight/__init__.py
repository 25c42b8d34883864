"""DM3D weight pruning: Taylor scores, distortion curves, DP allocation, masks, baselines."""
from .allocation import Allocation, allocate
from .checkpoint import read_dm3d_meta, save_pruned_checkpoint
from .curves import distortion_curve, taylor_scores
from .discovery import find_prunable_layers
from .masks import MaskSet
from .pruner import BudgetBelowFloor, DM3DPruner, PruneResult

__all__ = ['Allocation', 'allocate', 'distortion_curve', 'taylor_scores',
           'find_prunable_layers', 'MaskSet', 'BudgetBelowFloor', 'DM3DPruner', 'PruneResult',
           'read_dm3d_meta', 'save_pruned_checkpoint']
