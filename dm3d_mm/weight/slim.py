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
from collections import OrderedDict
from typing import Dict, Tuple

import torch
from mmengine.config import Config
from torch import Tensor, nn

from .channel_graph import (ChannelGraph, WidthGroup, find_channel_graph, in_channel_axis,
                            out_channel_axis)


def _zero_channels(model: nn.Module, producer) -> Tensor:
    modules = dict(model.named_modules())
    conv = modules[producer.layer]
    w = conv.weight.detach()
    axis = out_channel_axis(conv)
    dims = [d for d in range(w.dim()) if d != axis]
    zero = (w == 0).all(dim=dims)
    if getattr(conv, 'bias', None) is not None:
        zero &= conv.bias.detach() == 0
    if producer.norm is not None:
        norm = modules[producer.norm]
        for param in (norm.weight, norm.bias):
            if param is not None:
                zero &= param.detach() == 0
    return zero


def kept_channels(model: nn.Module, groups) -> Dict[str, Tensor]:
    """Producer -> sorted indices of the channels it keeps (equal counts within a group)."""
    keep = {}
    for group in groups:
        zero = {pr.layer: _zero_channels(model, pr) for pr in group.producers}
        width = max(1, max(int((~z).sum()) for z in zero.values()))
        for layer, z in zero.items():
            # the non-zero channels, then zero ones (lowest index first) up to the width
            order = torch.cat([torch.nonzero(~z).flatten(), torch.nonzero(z).flatten()])
            keep[layer] = torch.sort(order[:width]).values
    return keep


def slim_state_dict(model: nn.Module, groups, keep: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """The model's state_dict with the removed channels cut out everywhere."""
    modules = dict(model.named_modules())
    source = model.state_dict()
    sd = OrderedDict((k, v.detach().clone()) for k, v in source.items())
    # per-module versions: spconv converts its weight layout on load by them
    sd._metadata = getattr(source, '_metadata', None)
    in_keep: Dict[str, Tensor] = {}  # consumer -> mask over its input channels
    for group in groups:
        for pr in group.producers:
            idx = keep[pr.layer]
            conv = modules[pr.layer]
            sd[f'{pr.layer}.weight'] = sd[f'{pr.layer}.weight'].index_select(
                out_channel_axis(conv), idx.to(conv.weight.device))
            names = [f'{pr.layer}.bias']
            if pr.norm is not None:
                names += [f'{pr.norm}.{b}' for b in ('weight', 'bias', 'running_mean',
                                                     'running_var')]
            for key in names:
                if key in sd and sd[key] is not None and sd[key].dim() == 1:
                    sd[key] = sd[key].index_select(0, idx.to(sd[key].device))
            width = conv.weight.shape[out_channel_axis(conv)]
            for consumer, offset in pr.consumers.items():
                c = modules[consumer]
                if consumer not in in_keep:
                    in_keep[consumer] = torch.ones(c.weight.shape[in_channel_axis(c)],
                                                   dtype=torch.bool)
                dropped = torch.ones(width, dtype=torch.bool)
                dropped[idx.cpu()] = False
                in_keep[consumer][offset:offset + width] &= ~dropped
    for consumer, mask in in_keep.items():
        c = modules[consumer]
        idx = torch.nonzero(mask).flatten().to(c.weight.device)
        sd[f'{consumer}.weight'] = sd[f'{consumer}.weight'].index_select(in_channel_axis(c),
                                                                         idx)
    return sd


def slim(cfg: Config, model: nn.Module) -> Tuple[Config, Dict[str, Tensor], Dict[str, int]]:
    """(the slim model's config, its state_dict, the kept width of every group) for a
    channel-pruned ``model`` built from ``cfg``."""
    graph: ChannelGraph = find_channel_graph(model)
    groups = graph.groups(model)
    keep = kept_channels(model, groups)
    widths = {g.key: len(keep[g.producers[0].layer]) for g in groups}
    new_cfg = Config(copy.deepcopy(cfg.to_dict()))
    graph.rewrite(new_cfg.model, widths)
    return new_cfg, slim_state_dict(model, groups, keep), widths


def group_widths(model: nn.Module) -> Dict[str, int]:
    """The current width of every group of the model's channel graph."""
    modules = dict(model.named_modules())
    out = {}
    for g in find_channel_graph(model).groups(model):
        conv = modules[g.producers[0].layer]
        out[g.key] = conv.weight.shape[out_channel_axis(conv)]
    return out


__all__ = ['kept_channels', 'slim_state_dict', 'slim', 'group_widths', 'WidthGroup']
