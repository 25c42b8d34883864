"""Physically remove pruned channels: a smaller dense model and the config that builds it.

A channel is removable when channel pruning left it exactly zero: its conv weights (output
slice), and its norm's weight and bias (``DM3DPruner`` with ``granularity='channel'`` masks
all three). Cutting it out (the producer's output slice, the norm's entries, every
consumer's input slice) does not change any output. Works from the weights alone, so any
checkpoint pruned that way can be slimmed, with or without its pruning meta.

Producers of one width group keep the same number of channels (the config has one width for
them); where pruning left them unequal, zero channels are kept to even them out (exact: a
zero channel contributes nothing). Every group keeps at least one channel.
"""
import copy
from typing import Dict, Tuple

import torch
from mmengine.config import Config
from torch import Tensor, nn

from ..cost.layouts import in_channel_axis, kept_out_channels, out_channel_axis
from .channel_graph import ChannelGraph, WidthGroup, find_channel_graph


def _zero_channels(modules: Dict[str, nn.Module], producer) -> Tensor:
    conv = modules[producer.layer]
    zero = ~kept_out_channels(conv, conv.weight.detach() != 0)
    if getattr(conv, 'bias', None) is not None:
        zero &= conv.bias.detach() == 0
    if producer.norm is not None:
        norm = modules[producer.norm]
        # SPBN2d (Ada3D's sparsity-preserving norm) has a scale and no shift
        for param in (getattr(norm, 'weight', None), getattr(norm, 'bias', None)):
            if param is not None:
                zero &= param.detach() == 0
    return zero


def kept_channels(model: nn.Module, groups) -> Dict[str, Tensor]:
    """Producer -> sorted indices of the channels it keeps (equal counts within a group,
    the same indices in a ``same_channels`` group)."""
    keep = {}
    modules = dict(model.named_modules())
    for group in groups:
        zero = {pr.layer: _zero_channels(modules, pr) for pr in group.producers}
        if group.same_channels:  # one set of channels: zero only where zero in every one
            common = torch.stack(list(zero.values())).all(0)
            zero = {layer: common for layer in zero}
        width = max(1, max(int((~z).sum()) for z in zero.values()))
        for layer, z in zero.items():
            # the non-zero channels, then zero ones (lowest index first) up to the width
            order = torch.cat([torch.nonzero(~z).flatten(), torch.nonzero(z).flatten()])
            keep[layer] = torch.sort(order[:width]).values
    return keep


def _cut(module: nn.Module, name: str, axis: int, idx: Tensor) -> None:
    """Keep only ``idx`` along ``axis`` of a parameter or buffer, in place."""
    t = getattr(module, name, None)
    if t is None:
        return
    new = t.detach().index_select(axis, idx.to(t.device)).clone()
    if isinstance(t, nn.Parameter):
        setattr(module, name, nn.Parameter(new, requires_grad=t.requires_grad))
    else:
        setattr(module, name, new)


def slim_model(model: nn.Module, groups, keep: Dict[str, Tensor]) -> nn.Module:
    """A copy of ``model`` with the removed channels cut out of every producer, its norm and
    its consumers (modules changed in place, so each saves its state in its own layout)."""
    model = copy.deepcopy(model)
    modules = dict(model.named_modules())
    in_keep: Dict[str, Tensor] = {}  # consumer -> mask over its input channels
    for group in groups:
        for pr in group.producers:
            idx = keep[pr.layer].cpu()
            conv = modules[pr.layer]
            axis = out_channel_axis(conv)
            width = conv.weight.shape[axis]
            for consumer, (offset, per) in pr.consumers.items():
                c = modules[consumer]
                mask = in_keep.setdefault(
                    consumer, torch.ones(c.weight.shape[in_channel_axis(c)], dtype=torch.bool))
                dropped = torch.ones(width, dtype=torch.bool)
                dropped[idx] = False
                mask[offset:offset + width * per] &= ~dropped.repeat_interleave(per)
            _cut(conv, 'weight', axis, idx)
            _cut(conv, 'bias', 0, idx)
            conv.out_channels = len(idx)
            if pr.norm is not None:
                norm = modules[pr.norm]
                for name in ('weight', 'bias', 'running_mean', 'running_var', 'running_sq'):
                    _cut(norm, name, 0, idx)
                norm.num_features = len(idx)
    for consumer, mask in in_keep.items():
        c = modules[consumer]
        axis = in_channel_axis(c)  # before in_channels changes (spconv's layout check)
        _cut(c, 'weight', axis, torch.nonzero(mask).flatten())
        c.in_channels = int(mask.sum())
    return model


def slim(cfg: Config, model: nn.Module) -> Tuple[Config, Dict[str, Tensor], Dict[str, int]]:
    """(the slim model's config, its state_dict, the kept width of every group) for a
    channel-pruned ``model`` built from ``cfg``."""
    graph: ChannelGraph = find_channel_graph(model)
    groups = graph.groups(model)
    keep = kept_channels(model, groups)
    widths = {g.key: len(keep[g.producers[0].layer]) for g in groups}
    new_cfg = Config(copy.deepcopy(cfg.to_dict()))
    graph.rewrite(new_cfg.model, {k: widths[g.key] for g in groups for k in g.keys})
    return new_cfg, slim_model(model, groups, keep).state_dict(), widths


def group_widths(model: nn.Module) -> Dict[str, int]:
    """The current width of every group of the model's channel graph."""
    modules = dict(model.named_modules())
    out = {}
    for g in find_channel_graph(model).groups(model):
        conv = modules[g.producers[0].layer]
        out[g.key] = conv.weight.shape[out_channel_axis(conv)]
    return out


__all__ = ['kept_channels', 'slim_model', 'slim', 'group_widths', 'WidthGroup']
