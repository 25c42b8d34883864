"""Baseline allocations at the same FLOPs target: uniform, global magnitude, LAMP, ERK.

Each has one knob (a ratio, a global threshold, a scale) that is bisected until the cost
(``total``: masks -> the budget's unit) meets the budget; within a layer weights are ranked
by magnitude.
"""
from typing import Callable, Dict

import torch
from torch import Tensor, nn

from ..cost.layouts import mask_at
from ..errors import BudgetBelowFloor


def _magnitude_order(w: Tensor) -> Tensor:
    return torch.sort(w.detach().reshape(-1).abs(), stable=True).indices


def _bisect(make: Callable[[float], Dict[str, Tensor]], cost: Callable[[Dict], float],
            budget: float, lo: float, hi: float, iters: int = 50) -> Dict[str, Tensor]:
    """Smallest knob in [lo, hi] (more pruning as it grows) whose masks fit the budget."""
    best = make(hi)
    if cost(best) > budget:
        raise BudgetBelowFloor('the target cannot be met even at the most aggressive setting')
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        masks = make(mid)
        if cost(masks) <= budget:
            hi, best = mid, masks
        else:
            lo = mid
    return best


def uniform_masks(layers: Dict[str, nn.Module], total: Callable[[Dict], float],
                  budget: float):
    """The same pruning ratio in every layer."""
    orders = {n: _magnitude_order(m.weight) for n, m in layers.items()}

    def make(r):
        return {n: mask_at(m.weight, orders[n], int(round(r * m.weight.numel())))
                for n, m in layers.items()}
    return _bisect(make, total, budget, 0.0, 1.0)


def _global_threshold_masks(layers, total, budget, scores: Dict[str, Tensor]):
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    ranked = torch.sort(flat).values

    def make(q):
        n = int(round(q * (len(ranked) - 1)))
        thr = ranked[n]
        return {name: (scores[name] > thr).reshape(layers[name].weight.shape)
                for name in layers} if q > 0 else \
            {name: torch.ones_like(layers[name].weight, dtype=torch.bool) for name in layers}
    return _bisect(make, total, budget, 0.0, 1.0)


def global_magnitude_masks(layers, total, budget):
    """One magnitude threshold across all layers."""
    return _global_threshold_masks(
        layers, total, budget, {n: m.weight.detach().abs().reshape(-1) for n, m in layers.items()})


def lamp_scores(weight: Tensor) -> Tensor:
    """LAMP: w_u^2 / sum_{v >= u} w_v^2 over the layer's weights sorted by magnitude."""
    w2 = weight.detach().reshape(-1).double() ** 2
    order = torch.argsort(w2, stable=True)
    sorted_w2 = w2[order]
    tail = torch.flip(torch.cumsum(torch.flip(sorted_w2, [0]), 0), [0])
    scores = torch.empty_like(w2)
    scores[order] = sorted_w2 / tail.clamp_min(1e-300)
    return scores


def lamp_masks(layers, total, budget):
    return _global_threshold_masks(layers, total, budget,
                                   {n: lamp_scores(m.weight) for n, m in layers.items()})


def erk_density(module: nn.Module) -> float:
    """Erdos-Renyi-Kernel density shape: (sum of dims) / (product of dims)."""
    dims = [int(d) for d in module.weight.shape]
    total = 1
    for d in dims:
        total *= d
    return sum(dims) / total


def erk_masks(layers, total, budget):
    """Densities proportional to the ERK shape (capped at 1), scaled to meet the target."""
    orders = {n: _magnitude_order(m.weight) for n, m in layers.items()}
    shape = {n: erk_density(m) for n, m in layers.items()}
    top = max(shape.values())

    def make(t):  # t in [0, 1]: 0 keeps everything dense, 1 prunes all
        scale = (1.0 - t) / (t * top + 1e-12) if t > 0 else float('inf')
        out = {}
        for n, m in layers.items():
            density = min(1.0, scale * shape[n])
            keep = int(round(density * m.weight.numel()))
            out[n] = mask_at(m.weight, orders[n], m.weight.numel() - keep)
        return out
    return _bisect(make, total, budget, 0.0, 1.0)
