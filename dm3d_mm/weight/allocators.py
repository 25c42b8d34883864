"""Sparsity allocators: which layers keep how much, within a budget of a cost model.

Each is a registered piece (``ALLOCATORS``) selected by ``method=`` in the pruning config, as
a name or a ``dict(type=..., **args)``. An allocator declares the constraints it honours
(``constraints``); the pruner refuses a constraint the allocator does not honour rather than
dropping it. ``uses_curves`` allocators get the estimator's distortion curves.
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from torch import Tensor, nn

from ..errors import BudgetBelowFloor, UserError
from ..registry import ALLOCATORS
from .baselines import erk_masks, global_magnitude_masks, lamp_masks, uniform_masks
from .dp import Allocation, allocate

Masks = Dict[str, Tensor]

#: every constraint a pruner may pass on ('structured': a granularity other than single
#: weights; 'spatial': keep ratios chosen with the weights, see ``joint/search.py``)
CONSTRAINTS = ('keep_dense', 'min_density', 'max_density', 'structured', 'spatial')


@dataclass
class WeightProblem:
    """One allocation problem.

    Args:
        layers (dict[str, nn.Module]): the selected layers.
        total (Callable): exact cost of a set of masks (the budget's unit).
        floor (float): cost of everything that is not pruned.
        budget (float): the most the masked model may cost.
        items (list[list[str]]): DP items: layers that are pruned together (one width) or
            one layer each. Used by allocators with ``uses_curves``.
        item_costs (list[list[float]]): per item, the cost of each candidate.
        item_distortions (list[list[float]]): per item, the distortion of each candidate.
        item_allowed (list[list[bool]]): per item, which candidates the constraints allow.
        masks_of (Callable): candidate choice per item -> masks of every layer.
        exact_differs (bool): whether ``total`` of the DP's masks may differ from the summed
            item costs (channel items also free their consumers' input slices).
        num_buckets (int): budget resolution of the DP.
    """
    layers: Dict[str, nn.Module]
    total: Callable[[Optional[Masks]], float]
    floor: float
    budget: float
    items: List[List[str]] = field(default_factory=list)
    item_costs: List[List[float]] = field(default_factory=list)
    item_distortions: List[List[float]] = field(default_factory=list)
    item_allowed: List[List[bool]] = field(default_factory=list)
    masks_of: Optional[Callable[[List[int]], Masks]] = None
    exact_differs: bool = False
    num_buckets: int = 10000


class Allocator:
    """Base of the allocators: ``allocate(problem) -> (masks, choice or None)``."""

    #: the constraints (of :data:`CONSTRAINTS`) this allocator honours
    constraints: Tuple[str, ...] = ()
    #: whether the allocator needs the estimator's distortion curves
    uses_curves: bool = False

    def check(self, given: Dict[str, bool], name: str = '') -> None:
        """Raise ValueError naming the constraints in ``given`` (constraint -> whether it is
        set) that this allocator (registered as ``name``) does not honour."""
        unsupported = [c for c, on in given.items() if on and c not in self.constraints]
        if unsupported:
            raise UserError(f"method {name or type(self).__name__!r} does not honour "
                             f"{', '.join(unsupported)} (it honours "
                             f"{', '.join(self.constraints) or 'none of them'}); "
                             "each needs method='dm3d', or drop it")

    def allocate(self, problem: WeightProblem) -> Tuple[Masks, Optional[List[int]]]:
        raise NotImplementedError


@ALLOCATORS.register_module(name='dm3d')
class DPAllocator(Allocator):
    """DM3D's allocation (Alg. 1): the DP that minimises the summed distortion of one
    candidate per item within the budget. Where the exact cost of the DP's masks differs
    from the summed item costs (removed channels also free their consumers' input slices;
    measured latency tables need not be monotone), the DP's budget is bisected to the largest
    one whose masks' exact cost stays within the real budget: raised when the DP's choice at
    the budget fits, lowered when it does not.

    Args:
        bisect_steps (int): steps of that bisection. Defaults to 12.
    """
    constraints = CONSTRAINTS
    uses_curves = True

    def __init__(self, bisect_steps: int = 12):
        self.bisect_steps = int(bisect_steps)

    def solve(self, problem: WeightProblem, dp_budget: float) -> Tuple[Allocation, Masks]:
        """The DP's choice at ``dp_budget`` and its masks (ValueError if nothing fits)."""
        alloc = allocate(problem.item_costs, problem.item_distortions,
                         dp_budget - problem.floor, problem.num_buckets,
                         allowed=problem.item_allowed)
        return alloc, problem.masks_of(alloc.choice)

    def allocate(self, problem: WeightProblem) -> Tuple[Masks, List[int]]:
        budget = problem.budget
        best = None
        try:
            best = self.solve(problem, budget)
        except BudgetBelowFloor:  # the item costs do not fit; the exact costs may
            if not problem.exact_differs:
                raise
        if problem.exact_differs:
            lo, hi = budget, problem.total(None)
            if best is not None and problem.total(best[1]) > budget:
                best, lo, hi = None, problem.floor, budget  # over in exact cost: look below
            for _ in range(self.bisect_steps if best is not None else 2 * self.bisect_steps):
                mid = 0.5 * (lo + hi)
                try:
                    trial = self.solve(problem, mid)
                except BudgetBelowFloor:  # still below what the DP can allocate: go up
                    lo = mid
                    continue
                if problem.total(trial[1]) <= budget:
                    lo, best = mid, trial
                else:
                    hi = mid
        if best is None:
            raise BudgetBelowFloor('no allocation of the DP fits the budget: raise the target')
        alloc, masks = best
        return masks, alloc.choice


class _Baseline(Allocator):
    """A one-knob baseline, the knob bisected until the cost meets the budget."""
    rule: Callable = None

    def allocate(self, problem: WeightProblem) -> Tuple[Masks, None]:
        return type(self).rule(problem.layers, problem.total, problem.budget), None


@ALLOCATORS.register_module(name='uniform')
class UniformAllocator(_Baseline):
    """The same pruning ratio in every layer, weights ranked by magnitude."""
    rule = uniform_masks


@ALLOCATORS.register_module(name='global_magnitude')
class GlobalMagnitudeAllocator(_Baseline):
    """One magnitude threshold across all layers."""
    rule = global_magnitude_masks


@ALLOCATORS.register_module(name='lamp')
class LampAllocator(_Baseline):
    """One threshold on LAMP scores (Lee et al., 2021) across all layers."""
    rule = lamp_masks


@ALLOCATORS.register_module(name='erk')
class ErkAllocator(_Baseline):
    """Erdos-Renyi-Kernel densities, scaled to meet the budget."""
    rule = erk_masks
