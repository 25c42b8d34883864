"""mmengine hooks that carry DM3D pruning through training (custom_hooks in a config)."""
from .freeze_norm_stats import FreezeNormStatsHook
from .pruning_hook import DM3DPruningHook

__all__ = ['DM3DPruningHook', 'FreezeNormStatsHook']
