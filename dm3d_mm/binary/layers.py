"""Binary linear layer: sign(x) . sign(W) with a straight-through estimator, and the
Layer-wise Scale Recovery factor of BiPointNet."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce
from torch import Tensor, nn

from ..errors import UserError
from .signs import PACKED_SUFFIX, unpack_signs


class _SignSTE(torch.autograd.Function):
    """sign with sign(0) = +1; the gradient passes where |x| <= 1 (clipped identity)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def sign_ste(x: Tensor) -> Tensor:
    """+1 / -1 forward, clipped straight-through gradient backward."""
    return _SignSTE.apply(x)


def binary_options(binary: Optional[dict]) -> Tuple[dict, bool]:
    """A binarised encoder's ``binary`` dict checked and completed: (the BinaryLinear / EMA
    options of every layer, whether the first layer binarises its inputs)."""
    opts = dict(ema=True, lsr=True, enabled=True, binarize_first_input=False)
    unknown = set(binary or {}) - set(opts)
    if unknown:
        raise UserError(f'unknown binary options {sorted(unknown)}; known: {sorted(opts)}')
    opts.update(binary or {})
    return opts, opts.pop('binarize_first_input')


class BinaryLinear(nn.Linear):
    """nn.Linear whose weights (and inputs) are binarised to +-1 in the forward pass, with an
    optional learnable Layer-wise Scale Recovery factor ``lsr_scale`` (LSR). The
    full-precision weights are kept and trained through the straight-through estimator; the
    state_dict keys are nn.Linear's plus ``lsr_scale`` and ``lsr_ready``.

    LSR's scale starts at the ratio of the full-precision output's standard deviation to the
    binarised output's (``init_lsr``, run on the first training batch unless called before),
    then trains with the rest.

    Args:
        in_features (int): input features.
        out_features (int): output features.
        bias (bool): an additive bias (full precision). Defaults to False.
        binarize_input (bool): binarise the activations too. Defaults to True.
        lsr (bool): Layer-wise Scale Recovery. Defaults to True.
        enabled (bool): False runs the full-precision nn.Linear (the fallback). Defaults
            to True.
    """

    dm3d_skip_pruning = True  # its weights act as signs: DM3D's weight pruning leaves it alone

    def __init__(self, in_features: int, out_features: int, bias: bool = False,
                 binarize_input: bool = True, lsr: bool = True, enabled: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.binarize_input, self.lsr, self.enabled = binarize_input, lsr, enabled
        self.lsr_scale = nn.Parameter(torch.ones(1))
        self.register_buffer('lsr_ready', torch.zeros((), dtype=torch.bool))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a bit-packed export (binary/pack.py) stores sign(W) as ``packed_signs``: any
        # loader (mmengine's Runner, load_state_dict) restores it as the +-1 weight
        packed = state_dict.pop(prefix + PACKED_SUFFIX.lstrip('.'), None)
        if packed is not None:
            state_dict[prefix + 'weight'] = unpack_signs(packed['bits'], packed['shape'])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def computes_bops(self) -> bool:
        """Signs times signs (XNOR-popcount): the FLOPs counter counts binary ops."""
        return self.enabled and self.binarize_input

    def binary_product(self, x: Tensor) -> Tensor:
        xb = sign_ste(x) if self.binarize_input else x
        return F.linear(xb, sign_ste(self.weight))

    @torch.no_grad()
    def init_lsr(self, x: Tensor) -> float:
        """Set the scale to std(x W^T) / std(sign(x) sign(W)^T) on a batch ``x``; under a
        distributed launcher, the mean of every rank's value (each rank sees its own batch,
        and DDP only keeps parameters equal that start equal)."""
        full = F.linear(x, self.weight)
        binary = self.binary_product(x)
        scale = (full.std() / binary.std().clamp(min=1e-12)).reshape(1).float()
        all_reduce(scale, op='mean')  # a no-op without a process group
        self.lsr_scale.copy_(scale)
        self.lsr_ready.fill_(True)
        return float(scale)

    def forward(self, x: Tensor) -> Tensor:
        if not self.enabled:
            return F.linear(x, self.weight, self.bias)
        if self.lsr and self.training and not bool(self.lsr_ready):
            self.init_lsr(x.detach())
        out = self.binary_product(x)
        if self.lsr:
            out = out * self.lsr_scale
        return out if self.bias is None else out + self.bias
