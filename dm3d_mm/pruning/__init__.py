"""The pruner (``DM3DPruner``): calibration, selection, curves, allocation against a cost
model, masks, the recount of the pruned model; its config builder, report and checkpoint."""
from ..weight.allocators import BudgetBelowFloor
from .builder import build_pruner
from .checkpoint import read_dm3d_meta, save_pruned_checkpoint
from .pruner import DM3DPruner
from .result import LayerResult, PruneResult

__all__ = ['BudgetBelowFloor', 'build_pruner', 'read_dm3d_meta', 'save_pruned_checkpoint',
           'DM3DPruner', 'LayerResult', 'PruneResult']
