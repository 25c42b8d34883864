"""FLOPs cost model that pruning allocators query.

Built from a FlopsCounter after a forward over calibration frames: the MACs of any prunable
layer at any candidate mask are exact (sum over offsets of post-spatial-pruning pairs times
non-zero weights at that offset); layers that are not pruned contribute a fixed cost. All
numbers are means per frame.
"""
from collections import OrderedDict
from typing import Dict, Iterable, Optional

import torch

from ..errors import MissingKey
from .counter import FlopsCounter
from .layouts import offset_view


def offset_ids(module) -> torch.Tensor:
    """Kernel-offset index of every flat weight entry (same flattening as weight.view(-1))."""
    n = module.weight.numel()
    flat = torch.arange(n).reshape(module.weight.shape)
    rows = offset_view(module, flat)  # (K, N) flat indices
    ids = torch.empty(n, dtype=torch.long)
    ids[rows.reshape(-1)] = torch.arange(rows.shape[0]).repeat_interleave(rows.shape[1])
    return ids


def kept_per_offset(module, order: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Weights kept per kernel offset when the first counts[k] entries of ``order`` (flat
    weight indices) are pruned, for every k: (len(counts), K) int64, in O(D). It depends on
    the weight layout and the candidates only, not on a count, so one table serves every
    cost model of the same candidates (:meth:`CostModel.curve_costs`)."""
    ids = offset_ids(module)
    k_off = int(ids.max()) + 1
    kept = torch.bincount(ids, minlength=k_off)
    rows = []
    for k in range(len(counts)):
        lo = int(counts[k - 1]) if k else 0
        kept = kept - torch.bincount(ids[order[lo:int(counts[k])]], minlength=k_off)
        rows.append(kept)
    return torch.stack(rows)


class CostModel:
    """Exact joint MACs per frame of a counted model under any candidate masks.

    Args:
        counter (FlopsCounter): a counter that saw the calibration frames.
        prunable (Iterable[str]): the layers the allocation may mask.
    """
    unit = 'MACs'

    def __init__(self, counter: FlopsCounter, prunable: Iterable[str]):
        if counter.frames <= 0:
            raise ValueError('the FLOPs counter saw no frames: run a forward pass inside '
                             '`with counter:` and call counter.add_frames(n)')
        self.frames = counter.frames
        self.layers = counter.layers
        self.prunable = list(prunable)
        self._prunable_set = set(self.prunable)
        unknown = [n for n in self.prunable if n not in self.layers]
        if unknown:
            raise MissingKey(f'layers never ran in the counted forward: {unknown[:5]}')
        fixed = [n for n in self.layers if n not in set(self.prunable)]
        self.fixed_macs = sum(self.layers[n].macs() for n in fixed) / self.frames
        self.dense_total = sum(st.dense_macs for st in self.layers.values()) / self.frames

    @property
    def flops(self) -> 'CostModel':
        """The joint FLOPs model this cost model counts with: itself (a latency model has
        its own)."""
        return self

    def pairs(self, name: str) -> torch.Tensor:
        """Mean (input, output) pairs per kernel offset per frame."""
        return self.layers[name].pairs.double() / self.frames

    def layer_macs(self, name: str, mask: Optional[torch.Tensor] = None) -> float:
        """Mean MACs per frame of a prunable layer at a mask (default: current weights)."""
        return self.layers[name].macs(mask) / self.frames

    def layer_cost(self, name: str, mask: Optional[torch.Tensor] = None) -> float:
        """The allocation's cost of a layer at a mask: its MACs per frame."""
        return self.layer_macs(name, mask)

    @staticmethod
    def describe(value: float) -> str:
        return f'{value / 1e9:.4f} GMACs'

    def curve_costs(self, name: str, order: torch.Tensor, counts: torch.Tensor,
                    kept: Optional[torch.Tensor] = None) -> torch.Tensor:
        """MACs per frame of a layer when the first counts[k] weights of ``order`` are pruned,
        for every k: the pairs per offset times the weights kept there.

        Args:
            name (str): the layer.
            order (Tensor): flat weight indices in prune order.
            counts (Tensor): the candidates' pruned counts.
            kept (Tensor, optional): :func:`kept_per_offset` of these candidates, where the
                caller keeps it across cost models. Defaults to None (computed here).

        Returns:
            Tensor: (len(counts), ) float64.
        """
        st = self.layers[name]
        kept = kept_per_offset(st.module, order, counts) if kept is None else kept
        return (st.pairs.double() * kept).sum(1) / self.frames

    def layer_dense_macs(self, name: str) -> float:
        return self.layers[name].dense_macs / self.frames

    def total(self, masks: Optional[Dict[str, torch.Tensor]] = None) -> float:
        """Mean MACs per frame of the whole model with the given masks (on any counted layer)."""
        masks = masks or {}
        # a mask may also reach a layer that is not pruned itself (channel pruning clears
        # the input slices of the layers reading a removed channel)
        fixed = sum(self.layer_macs(n, m) - self.layer_macs(n) for n, m in masks.items()
                    if n in self.layers and n not in self._prunable_set)
        return self.fixed_macs + fixed + sum(self.layer_macs(n, masks.get(n))
                                             for n in self.prunable)

    @property
    def floor(self) -> float:
        """The cost no allocation can go below: layers that are not pruned."""
        return self.fixed_macs

    def by_part(self, masks: Optional[Dict[str, torch.Tensor]] = None) -> Dict[str, float]:
        masks = masks or {}
        out: Dict[str, float] = OrderedDict()
        for name, st in self.layers.items():
            out[st.part] = out.get(st.part, 0.0) + st.macs(masks.get(name)) / self.frames
        return out
