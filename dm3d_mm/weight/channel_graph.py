"""Which output channels can be removed together, and where they are consumed.

Channel pruning removes an output channel of a conv (its weights, its norm's affine and
statistics) together with the input slices of every layer that reads it. Which layers read a
channel, and which widths a config can express, depend on the detector family, so the
wiring is a registered, swappable piece (``CHANNEL_GRAPHS``), one per family of 2D parts:

- ``SECONDFPNChannels``: mmdet3d's ``SECOND`` backbone -> ``SECONDFPN`` neck -> a head
  reading the neck's concatenation (``Anchor3DHead``: conv_cls / conv_reg / conv_dir_cls;
  ``CenterHead``: shared_conv), as in SECOND, PointPillars and CenterPoint (``pts_`` parts).
  A backbone stage has one width in the config (``out_channels[s]``), so all convs of a
  stage keep the same number of channels (a tied group); each neck deblock has its own.

The 3D sparse encoder is not covered yet: its output is reshaped to the BEV map (channel x
height), which a graph would have to follow.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from mmengine.registry import Registry
from torch import nn

from ..registry import SCOPE, build_in_scope

CHANNEL_GRAPHS = Registry('channel_graph', scope=SCOPE, build_func=build_in_scope,
                          locations=['dm3d_mm.weight.channel_graph'])


@dataclass
class Producer:
    """A conv whose output channels may be removed.

    Args:
        layer (str): the conv's name.
        norm (str, optional): the norm layer right after it (its affine and statistics go
            with the channel).
        consumers (dict): name of each layer reading the channels -> the offset of the
            channels in its input (non-zero when it reads a concatenation).
    """
    layer: str
    norm: Optional[str]
    consumers: Dict[str, int] = field(default_factory=dict)


@dataclass
class WidthGroup:
    """Producers that keep the same number of channels: one width of the config.

    Args:
        key (str): the width's name, e.g. ``backbone.out_channels.0``.
        producers (list[Producer]): the convs of the group.
    """
    key: str
    producers: List[Producer]


class ChannelGraph:
    """A detector family's channel wiring; see the module docstring."""

    @classmethod
    def match(cls, model: nn.Module) -> Optional['ChannelGraph']:
        """An instance for ``model`` if this family describes it, else None."""
        raise NotImplementedError

    def groups(self, model: nn.Module) -> List[WidthGroup]:
        raise NotImplementedError

    def rewrite(self, model_cfg: dict, widths: Dict[str, int]) -> None:
        """Set the kept widths (``WidthGroup.key`` -> channels) in a model config, in place,
        so that mmdet3d builds the slim model from it."""
        raise NotImplementedError


@CHANNEL_GRAPHS.register_module()
class SECONDFPNChannels(ChannelGraph):
    """mmdet3d's SECOND backbone, SECONDFPN neck and a head reading the neck's concatenation.

    Args:
        prefix (str): ``''`` (VoxelNet, PointPillars) or ``'pts_'`` (CenterPoint).
    """

    # head class name -> its convs that read the neck's concatenation
    HEAD_INPUTS = {'Anchor3DHead': ('conv_cls', 'conv_reg', 'conv_dir_cls'),
                   'CenterHead': ('shared_conv.conv', )}

    def __init__(self, prefix: str = ''):
        self.prefix = prefix

    @classmethod
    def _head_inputs(cls, head: nn.Module) -> Optional[Sequence[str]]:
        for klass in type(head).__mro__:
            if klass.__name__ in cls.HEAD_INPUTS:
                names = dict(head.named_modules())
                return [n for n in cls.HEAD_INPUTS[klass.__name__] if n in names]
        return None

    @classmethod
    def match(cls, model):
        from mmdet3d.models.backbones import SECOND
        from mmdet3d.models.necks import SECONDFPN
        for prefix in ('', 'pts_'):
            backbone = getattr(model, prefix + 'backbone', None)
            neck = getattr(model, prefix + 'neck', None)
            head = getattr(model, prefix + 'bbox_head', None)
            if isinstance(backbone, SECOND) and isinstance(neck, SECONDFPN) and \
                    head is not None and cls._head_inputs(head):
                return cls(prefix)
        return None

    def groups(self, model):
        p = self.prefix
        backbone, neck = getattr(model, p + 'backbone'), getattr(model, p + 'neck')
        head = getattr(model, p + 'bbox_head')
        groups = []
        for s, block in enumerate(backbone.blocks):
            convs = [i for i, m in enumerate(block) if isinstance(m, nn.Conv2d)]
            producers = []
            for j, i in enumerate(convs):
                name = f'{p}backbone.blocks.{s}.{i}'
                if j + 1 < len(convs):  # read by the next conv of the stage
                    consumers = {f'{p}backbone.blocks.{s}.{convs[j + 1]}': 0}
                else:  # the stage's output: the next stage and the neck read it
                    consumers = {f'{p}neck.deblocks.{s}.0': 0}
                    if s + 1 < len(backbone.blocks):
                        consumers[f'{p}backbone.blocks.{s + 1}.0'] = 0
                producers.append(Producer(name, f'{p}backbone.blocks.{s}.{i + 1}', consumers))
            groups.append(WidthGroup(f'backbone.out_channels.{s}', producers))
        inputs = [f'{p}bbox_head.{n}' for n in self._head_inputs(head)]
        offset = 0
        for s, deblock in enumerate(neck.deblocks):
            name = f'{p}neck.deblocks.{s}.0'
            producers = [Producer(name, f'{p}neck.deblocks.{s}.1',
                                  {n: offset for n in inputs})]
            groups.append(WidthGroup(f'neck.out_channels.{s}', producers))
            offset += _out_channels(deblock[0])
        return groups

    def rewrite(self, model_cfg, widths):
        p = self.prefix
        backbone, neck = model_cfg[p + 'backbone'], model_cfg[p + 'neck']
        head = model_cfg[p + 'bbox_head']
        stages = list(backbone['out_channels'])
        deblocks = list(neck['out_channels'])
        for key, width in widths.items():
            part, _, index = key.rpartition('.')
            target = stages if part == 'backbone.out_channels' else deblocks
            target[int(index)] = int(width)
        backbone['out_channels'] = stages
        neck['in_channels'] = list(stages)
        neck['out_channels'] = deblocks
        head['in_channels'] = sum(deblocks)
        if 'feat_channels' in head:  # Anchor3DHead's convs read feat_channels
            head['feat_channels'] = sum(deblocks)


def _out_channels(layer: nn.Module) -> int:
    return layer.out_channels


def find_channel_graph(model: nn.Module) -> ChannelGraph:
    """The registered graph that describes ``model`` (the first that matches)."""
    for cls in CHANNEL_GRAPHS.module_dict.values():
        graph = cls.match(model)
        if graph is not None:
            return graph
    raise ValueError(f'no registered channel graph describes {type(model).__name__} (known: '
                     f'{sorted(CHANNEL_GRAPHS.module_dict)}); channel pruning needs one')


def out_channel_axis(layer: nn.Module) -> int:
    """The weight axis of output channels: 0 for convs, 1 for transposed convs."""
    return 1 if isinstance(layer, nn.modules.conv._ConvTransposeNd) else 0


def in_channel_axis(layer: nn.Module) -> int:
    return 1 - out_channel_axis(layer)


def producer_index(groups: Sequence[WidthGroup]) -> Dict[str, WidthGroup]:
    """Producer layer name -> its width group."""
    return {pr.layer: g for g in groups for pr in g.producers}
