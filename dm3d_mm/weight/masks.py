"""Binary weight masks that stay exact through training.

Masks are held outside the modules (no extra state_dict keys, so a pruned checkpoint still
loads into plain mmdet3d): pruned weights are zeroed in place, gradients of pruned entries
are zeroed, and the weights are re-masked before every forward and after every optimizer
step, so neither momentum nor weight decay can revive a pruned weight.

A mask is keyed by a layer's name (it masks the layer's ``weight``) or by a parameter's
full name (``backbone.blocks.0.1.bias``: channel pruning also zeroes the norm affine of a
removed channel, so that the channel is exactly zero downstream).
"""
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from ..errors import MissingKey, UnfitModel, UserError


def _premask(param: Tensor, mask: Tensor):
    def hook(module, inputs):  # returns None: the inputs are left as they are
        param.data.mul_(mask.to(param.device))
    return hook


def _target(modules: Dict[str, nn.Module], name: str) -> Tuple[nn.Module, Tensor]:
    """(owning module, masked parameter) of a mask key: a layer (its weight) or a
    parameter's full name."""
    if name in modules and getattr(modules[name], 'weight', None) is not None:
        return modules[name], modules[name].weight
    owner, _, attr = name.rpartition('.')
    param = getattr(modules[owner], attr, None) if owner in modules else None
    if not isinstance(param, torch.Tensor):
        raise MissingKey(f'masks name a layer or parameter this model does not have: {name}')
    return modules[owner], param


class MaskSet:

    def __init__(self, model: nn.Module, masks: Dict[str, Tensor]):
        self.model = model
        self.masks: Dict[str, Tensor] = {}
        modules = dict(model.named_modules())
        for name, mask in masks.items():
            _, weight = _target(modules, name)
            if tuple(mask.shape) != tuple(weight.shape):
                raise UserError(f'mask of {name} has shape {tuple(mask.shape)}, its weight '
                                 f'{tuple(weight.shape)}')
            self.masks[name] = mask.to(device=weight.device, dtype=torch.bool)
        self._handles = []

    def _targets(self):
        """(name, owning module, masked parameter, mask) of every mask."""
        modules = dict(self.model.named_modules())
        for name, mask in self.masks.items():
            yield (name, *_target(modules, name), mask)

    def _weights(self):
        for name, _, weight, mask in self._targets():
            yield name, weight, mask

    @torch.no_grad()
    def apply(self) -> 'MaskSet':
        """Zero every pruned weight in place."""
        for _, weight, mask in self._weights():
            if mask.device != weight.device:
                mask = mask.to(weight.device)
            weight.mul_(mask)
        return self

    def attach(self, optimizer=None) -> 'MaskSet':
        """Keep masks exact: pre-forward re-masking, masked gradients, post-step re-masking.

        Args:
            optimizer (Optimizer | Sequence[Optimizer] | None): the optimizer(s) after whose
                steps the masks are applied again (weight decay, momentum and Adam's moments
                would otherwise revive pruned weights); see :func:`optimizers_of`.
        """
        self.detach()
        self.apply()
        for _, owner, weight, mask in self._targets():
            self._handles.append(owner.register_forward_pre_hook(_premask(weight, mask)))
            self._handles.append(weight.register_hook(
                lambda grad, m=mask: grad * m.to(grad.device)))
        if isinstance(optimizer, torch.optim.Optimizer):
            optimizer = [optimizer]
        for opt in optimizer or []:
            self._handles.append(opt.register_step_post_hook(
                lambda opt, args, kwargs: self.apply()))
        return self

    def detach(self):
        for h in self._handles:
            h.remove()
        self._handles = []

    def sparsity(self) -> Dict[str, float]:
        return {n: 1.0 - float(m.float().mean()) for n, m in self.masks.items()}

    def total_sparsity(self) -> float:
        pruned = sum(int((~m).sum()) for m in self.masks.values())
        return pruned / max(sum(m.numel() for m in self.masks.values()), 1)

    def state(self) -> Dict[str, Tensor]:
        """CPU bool masks, for a checkpoint's meta."""
        return {n: m.detach().cpu().clone() for n, m in self.masks.items()}

    @classmethod
    def from_weights(cls, model: nn.Module, names) -> 'MaskSet':
        """Masks read back from zeros in the weights (a pruned checkpoint without meta)."""
        modules = dict(model.named_modules())
        return cls(model, {n: modules[n].weight.detach() != 0 for n in names})


def optimizers_of(optim_wrapper) -> List[torch.optim.Optimizer]:
    """Every torch optimizer an mmengine optim wrapper steps: the one of an ``OptimWrapper``
    (``AmpOptimWrapper`` and the others alike), each of an ``OptimWrapperDict``'s; a bare
    optimizer is its own. Anything else is an error: masks must not silently stop being
    re-applied after the steps.

    Args:
        optim_wrapper: the runner's ``optim_wrapper`` (or a torch optimizer).

    Returns:
        list[Optimizer]: the optimizers.
    """
    from mmengine.optim import OptimWrapper, OptimWrapperDict
    if isinstance(optim_wrapper, torch.optim.Optimizer):
        return [optim_wrapper]
    if isinstance(optim_wrapper, OptimWrapperDict):
        return [w.optimizer for w in optim_wrapper.optim_wrappers.values()]
    if isinstance(optim_wrapper, OptimWrapper):
        return [optim_wrapper.optimizer]
    raise UnfitModel(f'masks cannot be kept after the steps of a {type(optim_wrapper).__name__}'
                    ': give DM3DPruningHook an mmengine OptimWrapper or OptimWrapperDict')
