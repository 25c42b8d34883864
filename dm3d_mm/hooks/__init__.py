"""mmengine hooks that carry DM3D pruning and distillation through training (custom_hooks in
a config)."""
from .distill_hook import DistillationHook
from .freeze_norm_stats import FreezeNormStatsHook
from .pruning_hook import DM3DPruningHook

__all__ = ['DM3DPruningHook', 'DistillationHook', 'FreezeNormStatsHook']
