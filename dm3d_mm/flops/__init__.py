"""Joint FLOPs under voxel (spatial) and weight sparsity, counted from real forwards."""
from .counter import FlopsCounter, LayerStats, part_of
from .pairs import count_pairs

__all__ = ['FlopsCounter', 'LayerStats', 'count_pairs', 'part_of']
