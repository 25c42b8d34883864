"""Sparse-convolution geometry and rulebook execution shared by FLOPs counting, the
spatial-pruning convs and the offset-pruned convs."""
from .rulebook import geometry, kernel_offsets, regular_conv_outputs, rulebook, unique_sites

__all__ = ['geometry', 'kernel_offsets', 'regular_conv_outputs', 'rulebook', 'unique_sites']
