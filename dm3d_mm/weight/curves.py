"""Taylor scores and per-layer distortion curves delta_{i,k} (DM3D Sec. 4.2-4.4).

For one layer with weights W (D entries) and a gradient matrix G (M x D: one row per
calibration frame and random projection), candidate ratio alpha_k prunes the first
round(alpha_k D) weights in ascending Taylor-score order, giving dW_k = W~ - W.

- ``fisher``: delta_k = dW_k^T F dW_k with the empirical Fisher F = kappa I + G^T G / M.
  With Hutchinson projections u^T y (u Rademacher) E[G^T G] = J^T J, so this is the
  second-order distortion E||J dW||^2 of the whole vector output.
- ``taylor2``: the paper's Eq. 9/13 as written: delta_k = g^T dW_k + 1/2 dW_k^T F dW_k with
  g the averaged gradient of the (lambda-weighted) output sum.

Both are kept incrementally (Eq. 13): v_k = G dW_k = v_{k-1} + G sigma_k, where sigma_k holds
only the entries newly pruned at step k. A whole curve costs O(M D) and no D x D matrix is
ever formed.
"""
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor


def taylor_scores(weight: Tensor, grads: Tensor) -> Tensor:
    """S = |W| * ||dy/dW||: |W| times the RMS of the gradient rows (flattened like W)."""
    rms = grads.double().pow(2).mean(0).sqrt()
    return weight.detach().reshape(-1).double().cpu().abs() * rms.cpu()


def prune_order(scores: Tensor) -> Tensor:
    """Flat weight indices, least important first (ties broken by index: deterministic)."""
    return torch.sort(scores, stable=True).indices


def ratio_counts(numel: int, num_ratios: int) -> Tensor:
    """Pruned-weight counts n_k = round(k / K * D), k = 0..K."""
    k = torch.arange(num_ratios + 1, dtype=torch.float64)
    return torch.round(k / num_ratios * numel).long()


@dataclass
class Curve:
    """Distortion and bookkeeping of one layer for every candidate ratio k = 0..K."""
    counts: Tensor       # (K+1,) pruned weights
    distortion: Tensor   # (K+1,) delta_{i,k}
    order: Tensor        # (D,) prune order


def distortion_curve(weight: Tensor, grads: Tensor, num_ratios: int,
                     estimator: str = 'fisher', kappa: float = 0.0,
                     mean_grad: Optional[Tensor] = None,
                     scores: Optional[Tensor] = None, order: Optional[Tensor] = None,
                     counts: Optional[Tensor] = None) -> Curve:
    """Incremental Fisher / Taylor-2 distortion curve of one layer (see module doc).

    ``order`` and ``counts`` (K+1 pruned-entry counts) replace the entry-wise Taylor order
    and the even ratios, e.g. whole groups of a granularity (see ``granularity.py``): the
    step from counts[k-1] to counts[k] then removes whole groups, and delta_k stays the
    quadratic form on everything removed so far."""
    if estimator not in ('fisher', 'taylor2'):
        raise ValueError(f"estimator must be 'fisher' or 'taylor2', got {estimator!r}")
    w = weight.detach().reshape(-1).double().cpu()  # curves are computed on the CPU
    g = grads.double().cpu()
    m = g.shape[0]
    if g.shape[1] != w.numel():
        raise ValueError(f'gradient rows have {g.shape[1]} entries, the weight {w.numel()}')
    if order is None:
        order = prune_order(taylor_scores(weight, grads) if scores is None else scores)
    if counts is None:
        counts = ratio_counts(w.numel(), num_ratios)
    if len(counts) != num_ratios + 1:
        raise ValueError(f'{len(counts)} counts for {num_ratios} ratios')
    gbar = None
    if estimator == 'taylor2':
        gbar = (g.mean(0) if mean_grad is None else mean_grad.reshape(-1).double())
    v = torch.zeros(m, dtype=torch.float64)
    sq = 0.0
    lin = 0.0
    out = torch.zeros(num_ratios + 1, dtype=torch.float64)
    for k in range(1, num_ratios + 1):
        idx = order[counts[k - 1]:counts[k]]
        if len(idx):
            dw = -w[idx]                 # sigma_k: the newly pruned entries of dW
            v += g[:, idx] @ dw
            sq += float(dw @ dw)
            if gbar is not None:
                lin += float(gbar[idx] @ dw)
        quad = float(v @ v) / m + kappa * sq
        out[k] = quad if gbar is None else lin + 0.5 * quad
    return Curve(counts, out, order)
