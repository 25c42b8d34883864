"""DM3D's core: Taylor scores, distortion curves (registered estimators), the DP and the
baseline allocators (registered allocators), calibration passes, head outputs, masks."""
from .allocators import Allocator, BudgetBelowFloor, DPAllocator, WeightProblem
from .curves import distortion_curve, taylor_scores
from .discovery import find_prunable_layers
from .dp import Allocation, allocate
from .estimators import CurveInputs, DistortionEstimator
from .masks import MaskSet

__all__ = ['Allocation', 'allocate', 'Allocator', 'BudgetBelowFloor', 'DPAllocator',
           'WeightProblem', 'distortion_curve', 'taylor_scores', 'CurveInputs',
           'DistortionEstimator', 'find_prunable_layers', 'MaskSet']
