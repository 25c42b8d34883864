"""The recount policy: allocate, count the pruned model afresh as it will run, allocate
again until it fits the budget.

A spatial model whose kept sites follow the pruned weights counts other FLOPs than the dense
pass predicted, and a pruned model's measured time is not the sum of its convs' isolated
timings: the pruner's prediction is a starting point, the recount decides. Allocations are
tried (``attempts``) until the recounted model fits the budget and counts within
``RECOUNT_TOLERANCE`` below it; where none fits, the closest is an error unless the user
allows it.
"""
import logging
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from mmengine.logging import print_log
from torch import Tensor

from ..cost.cost_model import CostModel
from ..errors import BudgetBelowFloor, OverBudget

# an allocation that fits and counts within this fraction below the budget stands
RECOUNT_TOLERANCE = 0.005


class Attempt(NamedTuple):
    """One allocation of the recount loop: the pruned model's counted ``total`` and what
    made it (``index``: its place in the loop; ``target``: the budget it was allocated
    to)."""
    total: float
    masks: Dict[str, Tensor]
    counted: CostModel
    measured: float
    curves: Dict[str, Dict[str, list]]
    index: int
    flops_predicted: float
    joint: Optional[object]
    target: float


class Allocation(NamedTuple):
    """What one allocation at a target gives the loop: the masks, the cost they were
    allocated under (``predicted``), the joint FLOPs predicted, the joint choice (or None)
    and the chosen curves."""
    masks: Dict[str, Tensor]
    predicted: float
    flops_predicted: float
    joint: Optional[object]
    curves: Dict[str, Dict[str, list]]


def next_target(tried: List[tuple], aim: float, ceiling: float) -> float:
    """The allocator's next target after allocations that missed: ``tried`` holds
    (target, what the pruned model counted or measured) per allocation. The first miss
    scales the target by aim / measured; later ones take the secant through the last two
    (exact where the measured cost is affine in the target, as when the prediction misses a
    fixed share); never above ``ceiling`` (dense) nor at or below 0.

    Args:
        tried (list[tuple]): (target, counted) of each allocation so far.
        aim (float): the cost aimed at.
        ceiling (float): the largest target (the dense cost).
    """
    t1, m1 = tried[-1]
    nxt = t1 * aim / m1
    if len(tried) > 1:
        t0, m0 = tried[-2]
        if t1 != t0 and (m1 - m0) / (t1 - t0) > 0:
            nxt = t1 + (aim - m1) * (t1 - t0) / (m1 - m0)
    return min(max(nxt, 1e-6 * t1), ceiling)


class RecountLoop:
    """Allocations at a target until the pruned model, counted afresh, fits the budget.

    Args:
        allocate (Callable): ``target -> Allocation`` (the masks not yet applied; raises
            :class:`~dm3d_mm.errors.BudgetBelowFloor` below what the allocator reaches).
        recount (Callable): ``allocation -> (total, counted cost model, measured
            distortion)`` with the allocation applied to the model.
        restore (Callable): puts the model back as it came (weights, keep ratios).
        budget (float): what the pruned model may cost.
        before (float): the reference cost (the budget's whole).
        reachable (float): the least cost any allocation reaches.
        ceiling (float): the largest target (the model's own cost).
        attempts (int): allocations tried at most.
        measured_cost (bool): whether the budget counts measured seconds (a time is not met
            more closely by aiming higher: the first fit stands).
        allow_over_budget (bool): where none fits, keep the closest instead of raising
            :class:`~dm3d_mm.errors.OverBudget`.
        describe (Callable): a cost in words.
        reference (str): what the budget is a fraction of, in words.
        flops_target (float): the budget as a fraction (for the error line).
    """

    def __init__(self, allocate: Callable[[float], Allocation],
                 recount: Callable[[Allocation], Tuple[float, CostModel, float]],
                 restore: Callable[[], None], budget: float, before: float,
                 reachable: float, ceiling: float, attempts: int, measured_cost: bool,
                 allow_over_budget: bool, describe: Callable[[float], str], reference: str,
                 flops_target: float):
        self.allocate, self.recount, self.restore = allocate, recount, restore
        self.budget, self.before = budget, before
        self.reachable, self.ceiling = reachable, ceiling
        self.attempts, self.measured_cost = attempts, measured_cost
        self.allow_over_budget = allow_over_budget
        self.describe, self.reference = describe, reference
        self.flops_target = flops_target
        self.targets: List[float] = []  # the target of every allocation tried

    def fits(self, total: float) -> bool:
        """Whether a counted ``total`` is within the budget."""
        return total <= self.budget * (1 + 1e-9)

    def fit(self, target: float) -> Tuple[Attempt, int]:
        """Allocate at ``target``, count the pruned model, allocate again (the target scaled
        by how far the count missed) until it fits: (the best attempt, the last attempt's
        index); the model holds the last attempt's masks."""
        budget, before = self.budget, self.before
        verb = 'measures' if self.measured_cost else 'counts'
        best, closest, tried = None, None, []
        for index in range(self.attempts):
            self.targets.append(target)
            if index:  # allocate again, the target scaled by how far the count missed
                self.restore()
            try:
                alloc = self.allocate(target)
            except BudgetBelowFloor:  # a lowered target below what the allocator reaches
                if not index:
                    raise
                break
            total, counted, measured = self.recount(alloc)
            this = Attempt(total, alloc.masks, counted, measured, alloc.curves, index,
                           alloc.flops_predicted, alloc.joint, target)
            if self.fits(total) and (best is None or total > best.total):
                best = this
            if closest is None or total < closest.total:  # where none fits: the least
                closest = this
            # nothing moved: the choice stands
            exact = abs(total - alloc.predicted) <= 1e-9 * before
            if self.fits(total) and (self.measured_cost or exact or
                                     total >= budget * (1 - RECOUNT_TOLERANCE)):
                break
            tried.append((target, total))
            if index + 1 == self.attempts:
                break
            # not below what the sparsest allocation costs (the allocator cannot go lower)
            target = max(next_target(tried, budget * (1 - RECOUNT_TOLERANCE / 2),
                                     self.ceiling),
                         min(self.reachable * (1 + 1e-9), target))
            print_log(f'DM3DPruner: the pruned model {verb} {total / before:.4f} of '
                      f'{self.reference} for a budget of {budget / before:.4f}: allocating '
                      f'again to {target / before:.4f} of the prediction', logger='current')
        if best is None:
            best = closest
            line = (f'after {index + 1} allocation(s) no pruned model fits: the closest '
                    f'{verb} {self.describe(best.total)} per frame '
                    f'({best.total / before:.4f} of {self.reference}), over the budget '
                    f'{self.describe(budget)} ({self.flops_target:.4g})')
            if not self.allow_over_budget:  # the model as it came, then the error
                self.restore()
                raise OverBudget(f'{line}; raise the target, or allow_over_budget=True '
                                 '(tools/prune.py --allow-over-budget) keeps the closest '
                                 'model')
            print_log(f'DM3DPruner: {line}; kept as allow_over_budget asks',
                      logger='current', level=logging.WARNING)
        return best, index
