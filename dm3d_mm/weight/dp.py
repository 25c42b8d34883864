"""Layer-wise sparsity allocation by dynamic programming under a FLOPs budget (Alg. 1).

minimise sum_i delta_{i, k_i}  subject to  sum_i cost_{i, k_i} <= budget.

Costs are put on a grid of ``num_buckets`` units of the budget and rounded *up*, so any
allocation the DP accepts truly fits the budget (rounding can only make it conservative);
the exact achieved cost is reported from the unrounded costs. With integer costs and
``unit=1`` the DP is exact.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from ..errors import BudgetBelowFloor


@dataclass
class Allocation:
    choice: List[int]        # chosen candidate index per layer
    cost: float              # exact summed cost of the choice
    distortion: float        # summed distortion of the choice
    budget: float


def allocate(costs: Sequence[Sequence[float]], distortions: Sequence[Sequence[float]],
             budget: float, num_buckets: int = 10000, unit: Optional[float] = None,
             allowed: Optional[Sequence[Sequence[bool]]] = None) -> Allocation:
    """Pick one candidate per layer minimising total distortion within the budget."""
    if len(costs) != len(distortions) or not costs:
        raise ValueError('costs and distortions must be non-empty lists of equal length')
    if not budget > 0:
        raise BudgetBelowFloor(f'the budget for the pruned layers must be positive, got {budget}')
    if unit is None:
        unit = budget / num_buckets
    nb = int(budget // unit)  # nb * unit <= budget
    inf = np.inf
    g = np.zeros(nb + 1)  # g[b]: min distortion of the layers so far with cost <= b units
    back, all_units = [], []
    for i, (c, d) in enumerate(zip(costs, distortions)):
        c = np.asarray(c, dtype=np.float64)
        d = np.asarray(d, dtype=np.float64)
        ok = np.ones(len(c), bool) if allowed is None else np.asarray(allowed[i], bool)
        if not ok.any():
            raise ValueError(f'layer {i} has no allowed candidate')
        units = np.ceil(c / unit).astype(np.int64)  # round up: never over budget
        all_units.append(units)
        new = np.full(nb + 1, inf)
        arg = np.full(nb + 1, -1, dtype=np.int64)
        for k in np.flatnonzero(ok):
            u = int(units[k])
            if u > nb:
                continue
            cand = np.full(nb + 1, inf)
            cand[u:] = g[:nb + 1 - u] + d[k]
            better = cand < new
            new[better] = cand[better]
            arg[better] = k
        g = new
        back.append(arg)
    if not np.isfinite(g[nb]):
        raise BudgetBelowFloor('no allocation fits the budget: even the sparsest allowed candidate '
                         'of every layer costs more')
    choice = []
    b = nb
    for i in range(len(costs) - 1, -1, -1):
        k = int(back[i][b])
        choice.append(k)
        b -= int(all_units[i][k])
    choice.reverse()
    cost = float(sum(np.asarray(c, np.float64)[k] for c, k in zip(costs, choice)))
    dist = float(sum(np.asarray(d, np.float64)[k] for d, k in zip(distortions, choice)))
    return Allocation(choice, cost, dist, budget)
