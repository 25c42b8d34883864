"""The masks that go with removed output channels: the producer's norm affine (so the channel
is exactly zero after norm and activation) and the consumers' input slices (weights that only
ever multiply a zero channel), so that the masked model counts what the slim model computes.
"""
from typing import Dict, Iterable

import torch
from torch import Tensor, nn

from ..cost.layouts import in_channel_axis, kept_out_channels
from .channel_graph import WidthGroup


def channel_side_masks(model: nn.Module, groups: Iterable[WidthGroup],
                       masks: Dict[str, Tensor], pruned: Iterable[str]) -> Dict[str, Tensor]:
    """Masks to add for the channel-pruned producers ``pruned`` (keys of ``masks``):
    ``<norm>.weight`` / ``<norm>.bias`` of each removed channel, and every consumer's weight
    mask with the removed channels' input slices cleared (its own mask, if any, kept)."""
    pruned = set(pruned)
    modules = dict(model.named_modules())
    out: Dict[str, Tensor] = {}
    for group in groups:
        for pr in group.producers:
            if pr.layer not in pruned:
                continue
            kept = kept_out_channels(modules[pr.layer], masks[pr.layer])
            if pr.norm is not None:
                for param in ('weight', 'bias'):
                    if getattr(modules[pr.norm], param, None) is not None:
                        out[f'{pr.norm}.{param}'] = kept.clone()
            for consumer, (offset, per) in pr.consumers.items():
                layer = modules[consumer]
                w = layer.weight
                current = out.get(consumer, masks.get(consumer))
                if current is None:
                    current = torch.ones(w.shape, dtype=torch.bool, device=w.device)
                axis = in_channel_axis(layer)
                live = torch.ones(w.shape[axis], dtype=torch.bool, device=w.device)
                live[offset:offset + len(kept) * per] = kept.to(w.device).repeat_interleave(per)
                view = [1] * w.dim()
                view[axis] = w.shape[axis]
                out[consumer] = current.to(w.device) & live.reshape(view)
    return out
