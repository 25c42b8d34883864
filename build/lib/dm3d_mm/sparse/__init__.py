"""Sparse-convolution geometry shared by FLOPs counting and the spatial-pruning convs."""
from .rulebook import (geometry, kernel_offsets, regular_conv_outputs, rulebook,
                       unique_sites)

__all__ = ['geometry', 'kernel_offsets', 'regular_conv_outputs', 'rulebook', 'unique_sites']
