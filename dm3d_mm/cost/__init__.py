"""Cost models: the joint FLOPs under voxel (spatial) and weight sparsity, counted from real
forwards, and what a budget counts (``budget_cost.py``: joint FLOPs or measured latency,
``latency_cost.py``)."""
from .counted_forward import count_flops, frames_in
from .counter import FlopsCounter, LayerStats, part_of
from .pairs import count_pairs

__all__ = ['FlopsCounter', 'LayerStats', 'count_flops', 'count_pairs', 'frames_in', 'part_of']
