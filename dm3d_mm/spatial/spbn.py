"""Sparsity-Preserving BatchNorm (Ada3D): statistics over non-zero pixels only, no mean
subtraction and no shift, so a zero (pruned) BEV pixel stays exactly zero."""
import torch
from mmengine.registry import MODELS
from torch import nn


@MODELS.register_module('SPBN2d')
class SparsityPreservingBN2d(nn.Module):
    """y = gamma * x / sqrt(E[x^2] + eps), E over the non-zero pixels of each channel.

    Loading a BatchNorm2d state dict converts its statistics (E[x^2] = var + mean^2) and
    drops beta, so a dense checkpoint is a sensible start for fine-tuning.

    Args:
        num_features (int): channels.
        eps (float): added to E[x^2]. Defaults to 1e-5.
        momentum (float): running-statistics update rate. Defaults to 0.1.
        affine (bool): learn a per-channel scale gamma. Defaults to True.
    """
    _abbr_ = 'bn'

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.register_buffer('running_sq', torch.ones(num_features))

    def _inv_rms(self, sum_sq: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """1 / sqrt(E[x^2] + eps) per channel: in training from the batch's ``sum_sq`` over
        its ``n`` active pixels (the running statistics updated), else the running one."""
        if self.training:
            sq = sum_sq / n.clamp(min=1)
            with torch.no_grad():
                self.running_sq.mul_(1 - self.momentum).add_(self.momentum * sq.detach())
        else:
            sq = self.running_sq
        return torch.rsqrt(sq + self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sum_sq = n = None
        if self.training:
            active = (x != 0).any(1, keepdim=True)  # pixels that carry features
            sum_sq, n = (x.square() * active).sum((0, 2, 3)), active.sum()
        y = x * self._inv_rms(sum_sq, n)[None, :, None, None]
        if self.weight is not None:
            y = y * self.weight[None, :, None, None]
        return y

    def forward_rows(self, feats: torch.Tensor) -> torch.Tensor:
        """The same normalisation on the active pixels' feature rows (pixels, C); rows that
        are all zero do not count as active, as in :meth:`forward`."""
        sum_sq = n = None
        if self.training:
            sum_sq, n = feats.square().sum(0), (feats != 0).any(1).sum()
        y = feats * self._inv_rms(sum_sq, n)
        return y * self.weight if self.weight is not None else y

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        mean, var = prefix + 'running_mean', prefix + 'running_var'
        if var in state_dict and prefix + 'running_sq' not in state_dict:
            m = state_dict.pop(mean, torch.zeros_like(state_dict[var]))
            state_dict[prefix + 'running_sq'] = state_dict.pop(var) + m.square()
            for extra in ('bias', 'num_batches_tracked'):
                state_dict.pop(prefix + extra, None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)
