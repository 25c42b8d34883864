"""Entropy-Maximising Aggregation (BiPointNet): shift the features before max pooling so
that the sign of the pooled output keeps the most information.

For n aggregated elements drawn from a standard normal (features after a norm layer), the
pooled max exceeds a threshold d with probability 1 - Phi(d)^n; the binarised output has
maximal entropy (one bit) when that is one half, i.e. at d* = Phi^-1(2^(-1/n)). Shifting by
d* keeps the entropy at one bit whatever n is, where plain max pooling drives it to zero as
n grows (every pooled output is positive).
"""
import math
from typing import Optional

import torch
from torch import Tensor, nn


def ema_shift(n: int) -> float:
    """d* = Phi^-1(2^(-1/n)) for n standard-normal elements (0 for n = 1)."""
    if n < 1:
        raise ValueError(f'EMA needs at least one aggregated element, got {n}')
    p = 0.5 ** (1.0 / n)
    return float(torch.special.ndtri(torch.tensor(p, dtype=torch.float64)))


def ema_max(x: Tensor, ema: bool = True, dim: int = 1,
            num_elements: Optional[int] = None) -> Tensor:
    """max over ``dim`` (kept), shifted by d* when ``ema`` (n = ``num_elements``, default
    the size of ``dim``)."""
    pooled = torch.max(x, dim=dim, keepdim=True)[0]
    return pooled - ema_shift(num_elements or x.shape[dim]) if ema else pooled


class EMAMaxPool(nn.Module):
    """max over ``dim`` of (x - d*), with d* from the number of aggregated elements.

    Args:
        dim (int): the dimension aggregated. Defaults to 1.
        num_elements (int, optional): n used for the shift; None: the size of ``dim``.
            Defaults to None.
    """

    def __init__(self, dim: int = 1, num_elements=None):
        super().__init__()
        self.dim, self.num_elements = dim, num_elements

    def shift(self, x: Tensor) -> float:
        return ema_shift(self.num_elements or x.shape[self.dim])

    def forward(self, x: Tensor, keepdim: bool = True) -> Tensor:
        pooled = ema_max(x, True, self.dim, self.num_elements)
        return pooled if keepdim else pooled.squeeze(self.dim)


def binary_entropy(p: float) -> float:
    """Entropy in bits of a +-1 variable that is +1 with probability p."""
    if p <= 0 or p >= 1:
        return 0.0
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
