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

- ``CenterHeadChannels``: CenterHead's shared conv and its SeparateHead branches' inner
  convs (one width for all branches of all tasks).
- ``SparseEncoderChannels``: mmdet3d's ``SparseEncoder`` (conv-module blocks, as SECOND's
  and CenterPoint's): every sparse conv has its own width in the config (``base_channels``,
  ``encoder_channels[i][j]``, ``output_channels``); ``conv_out``'s channels reach the 2D
  backbone through the BEV reshape, channel c as input channels c*D .. c*D + D-1.
- ``SPSSEncoderChannels``: the same for SPS-Conv's ``SPSSSparseEncoder``, whose pruning
  submanifold convs keep their input's channels (pruned voxels pass through) and whose
  voxel scorers read their convs' inputs.

Every graph that matches a model contributes its groups (``find_channel_graph``).
"""
import inspect
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from torch import nn

from ..cost.layouts import is_sparse_conv
from ..errors import MissingKey, UserError
from ..registry import CHANNEL_GRAPHS
from ..spatial.ada3d_encoder import Ada3DSparseEncoder
from ..spatial.spss_conv import SPSSSubMConv3d
from ..spatial.spss_encoder import SPSSSparseEncoder


@dataclass
class Producer:
    """A conv whose output channels may be removed.

    Args:
        layer (str): the conv's name.
        norm (str, optional): the norm layer right after it (its affine and statistics go
            with the channel).
        consumers (dict): name of each layer reading the channels -> (offset, per): channel
            c is its input channels offset + c * per .. offset + c * per + per - 1 (offset:
            where a concatenation puts them; per: 1, or the height D of a BEV reshape).
    """
    layer: str
    norm: Optional[str]
    consumers: Dict[str, Tuple[int, int]] = field(default_factory=dict)


@dataclass
class WidthGroup:
    """Producers that keep the same number of channels: one width of the config.

    Args:
        key (str): the width's name, its path in the model config, e.g.
            ``backbone.out_channels.0`` or ``pts_middle_encoder.encoder_channels.1.2``.
        producers (list[Producer]): the convs of the group.
        tied_keys (list[str]): further widths of the config that must equal this one.
            Defaults to none.
        same_channels (bool): every producer keeps the same channel *indices*, not only
            as many (a conv that passes its input rows through, as SPS-Conv's pruned voxels
            do, must keep the channels its input keeps). Defaults to False.
    """
    key: str
    producers: List[Producer]
    tied_keys: List[str] = field(default_factory=list)
    same_channels: bool = False

    @property
    def keys(self) -> List[str]:
        """Every config width this group sets."""
        return [self.key] + list(self.tied_keys)


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
                    consumers = {f'{p}backbone.blocks.{s}.{convs[j + 1]}': (0, 1)}
                else:  # the stage's output: the next stage and the neck read it
                    consumers = {f'{p}neck.deblocks.{s}.0': (0, 1)}
                    if s + 1 < len(backbone.blocks):
                        consumers[f'{p}backbone.blocks.{s + 1}.0'] = (0, 1)
                producers.append(Producer(name, f'{p}backbone.blocks.{s}.{i + 1}', consumers))
            groups.append(WidthGroup(f'{p}backbone.out_channels.{s}', producers))
        inputs = [f'{p}bbox_head.{n}' for n in self._head_inputs(head)]
        offset = 0
        for s, deblock in enumerate(neck.deblocks):
            name = f'{p}neck.deblocks.{s}.0'
            producers = [Producer(name, f'{p}neck.deblocks.{s}.1',
                                  {n: (offset, 1) for n in inputs})]
            groups.append(WidthGroup(f'{p}neck.out_channels.{s}', producers))
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
            target = stages if part == f'{p}backbone.out_channels' else deblocks
            target[int(index)] = int(width)
        backbone['out_channels'] = stages
        neck['in_channels'] = list(stages)
        neck['out_channels'] = deblocks
        head['in_channels'] = sum(deblocks)
        if 'feat_channels' in head:  # Anchor3DHead's convs read feat_channels
            head['feat_channels'] = sum(deblocks)


def _out_channels(layer: nn.Module) -> int:
    return layer.out_channels


def _with_class_defaults(module_cfg: dict, keys: Sequence[str]) -> None:
    """Write into ``module_cfg`` each of ``keys`` it leaves to its class's default (mmdet3d's
    SECOND KITTI config names none of its encoder's widths), taken from the first
    ``__init__`` along the registered class's MRO that declares it."""
    from mmdet3d.registry import MODELS
    kind = module_cfg['type']
    cls = kind if inspect.isclass(kind) else MODELS.get(kind)
    if cls is None:
        raise MissingKey(f"{module_cfg['type']!r} is not a registered mmdet3d model")
    for key in keys:
        if key in module_cfg:
            continue
        for klass in cls.__mro__:
            param = inspect.signature(klass.__init__).parameters.get(key)
            if param is not None and param.default is not inspect.Parameter.empty:
                module_cfg[key] = param.default
                break


@CHANNEL_GRAPHS.register_module()
class SparseEncoderChannels(ChannelGraph):
    """mmdet3d's SparseEncoder built of conv modules (sparse conv, norm, activation).

    Args:
        prefix (str): ``''`` (VoxelNet) or ``'pts_'`` (CenterPoint).
    """

    def __init__(self, prefix: str = ''):
        self.prefix = prefix

    @classmethod
    def encoders(cls) -> tuple:
        """The encoder classes this graph describes (exact types: a subclass may rewire)."""
        from mmdet3d.models.middle_encoders import SparseEncoder

        # mmdet3d's encoder, or Ada3D's (dropping voxels keeps the wiring)
        return (SparseEncoder, Ada3DSparseEncoder)

    @classmethod
    def match(cls, model):
        for prefix in ('', 'pts_'):
            enc = getattr(model, prefix + 'middle_encoder', None)
            backbone = getattr(model, prefix + 'backbone', None)
            if type(enc) in cls.encoders() and backbone is not None and all(
                    hasattr(block, '__len__') and len(block) == 3  # not a residual block
                    and is_sparse_conv(block[0])
                    for stage in enc.encoder_layers for block in stage):
                return cls(prefix)
        return None

    def _chain(self, model):
        """(name, config width key) of every conv in forward order."""
        p = self.prefix + 'middle_encoder'
        enc = getattr(model, self.prefix + 'middle_encoder')
        chain = [(f'{p}.conv_input', 'base_channels')]
        for i, (name, stage) in enumerate(enc.encoder_layers.named_children()):
            for j in range(len(stage)):
                chain.append((f'{p}.encoder_layers.{name}.{j}', f'encoder_channels.{i}.{j}'))
        chain.append((f'{p}.conv_out', 'output_channels'))
        return chain

    def bev_height(self, model) -> int:
        enc = getattr(model, self.prefix + 'middle_encoder')
        first = _first_conv(getattr(model, self.prefix + 'backbone'))
        return first.in_channels // enc.output_channels

    def groups(self, model):
        chain = self._chain(model)
        first = self.prefix + 'backbone.' + _first_conv_name(
            getattr(model, self.prefix + 'backbone'))
        groups = []
        for k, (block, key) in enumerate(chain):
            if k + 1 < len(chain):
                consumers = {chain[k + 1][0] + '.0': (0, 1)}
            else:
                consumers = {first: (0, self.bev_height(model))}
            groups.append(WidthGroup(f'{self.prefix}middle_encoder.{key}',
                                     [Producer(block + '.0', block + '.1', consumers)]))
        return groups

    def encoder_cfg(self, model_cfg) -> dict:
        """The encoder's config in ``model_cfg``, its widths written out (where the config
        leaves them at the class defaults, as mmdet3d's SECOND KITTI config does)."""
        enc = model_cfg[self.prefix + 'middle_encoder']
        _with_class_defaults(enc, ('base_channels', 'output_channels', 'encoder_channels'))
        return enc

    def rewrite(self, model_cfg, widths):
        p = self.prefix
        enc = self.encoder_cfg(model_cfg)
        channels = [list(stage) for stage in enc['encoder_channels']]
        height = None
        for key, width in widths.items():
            name = key[len(f'{p}middle_encoder.'):]
            if name == 'base_channels':
                enc['base_channels'] = int(width)
            elif name == 'output_channels':
                height = model_cfg[p + 'backbone']['in_channels'] // enc['output_channels']
                enc['output_channels'] = int(width)
            else:
                _, i, j = name.split('.')
                channels[int(i)][int(j)] = int(width)
        enc['encoder_channels'] = tuple(tuple(stage) for stage in channels)
        if height is not None:
            model_cfg[p + 'backbone']['in_channels'] = enc['output_channels'] * height


@CHANNEL_GRAPHS.register_module()
class SPSSEncoderChannels(SparseEncoderChannels):
    """An ``SPSSSparseEncoder`` (SPS-Conv's spatially pruned SparseEncoder, conv-module
    blocks): the SparseEncoder's wiring, and two things its pruning convs add.

    - A pruning submanifold conv passes the voxels it prunes through unchanged (their input
      rows become its output rows), so it keeps its input's width and its input's channel
      indices: it joins its producer's group (``same_channels``, its width a tied key).
    - Each pruning conv scores the voxels from its input features: a 'foreground' scorer's
      linear layer and a 'learned' scorer's conv read the input channels (consumers). The
      'magnitude' score is a mean over the input channels; the slim config records the
      widths as trained (``score_widths``), so the slim encoder divides by those.

    Args:
        prefix (str): ``''`` (VoxelNet) or ``'pts_'`` (CenterPoint).
    """

    SCORERS = ('importance.linear', 'importance.conv')

    @classmethod
    def encoders(cls):
        return (SPSSSparseEncoder, )

    def groups(self, model):
        modules = dict(model.named_modules())
        merged: List[WidthGroup] = []
        for group in super().groups(model):
            (producer, ) = group.producers
            for reader in list(producer.consumers):
                for scorer in self.SCORERS:
                    if f'{reader}.{scorer}' in modules:
                        producer.consumers[f'{reader}.{scorer}'] = (0, 1)
            if merged and isinstance(modules[producer.layer], SPSSSubMConv3d):
                merged[-1].producers.append(producer)
                merged[-1].tied_keys.append(group.key)
                merged[-1].same_channels = True
            else:
                merged.append(group)
        return merged

    def rewrite(self, model_cfg, widths):
        enc = self.encoder_cfg(model_cfg)
        if enc.get('min_prune_channels', 0):
            raise UserError('slimming an SPSSSparseEncoder built with min_prune_channels is '
                             'not supported: which convs prune would change with the widths')
        if enc.get('importance', 'magnitude') == 'magnitude' and \
                enc.get('score_widths') is None:
            enc['score_widths'] = dict(
                base_channels=enc['base_channels'],
                encoder_channels=tuple(tuple(st) for st in enc['encoder_channels']))
        super().rewrite(model_cfg, widths)


@CHANNEL_GRAPHS.register_module()
class CenterHeadChannels(ChannelGraph):
    """mmdet3d's CenterHead: ``shared_conv`` (width ``share_conv_channel``) read by the first
    conv of every branch of every task's SeparateHead, and the branches' inner convs (one
    width for all of them, ``separate_head.head_conv``: a tied group) read by the next conv
    of their branch. The branches' final convs are the head's outputs and keep their width.

    Args:
        prefix (str): ``''`` or ``'pts_'`` (CenterPoint).
    """

    def __init__(self, prefix: str = ''):
        self.prefix = prefix

    @classmethod
    def match(cls, model):
        for prefix in ('', 'pts_'):
            head = getattr(model, prefix + 'bbox_head', None)
            if head is not None and any(k.__name__ == 'CenterHead' for k in type(head).__mro__) \
                    and hasattr(head, 'shared_conv') and hasattr(head, 'task_heads'):
                return cls(prefix)
        return None

    def groups(self, model):
        p = self.prefix + 'bbox_head'
        head = getattr(model, self.prefix + 'bbox_head')
        firsts, inner = {}, []
        for t, task in enumerate(head.task_heads):
            for branch in task.heads:
                layers = getattr(task, branch)
                names = [f'{p}.task_heads.{t}.{branch}.{i}' for i in range(len(layers))]
                convs = [n + '.conv' for n in names[:-1]] + [names[-1]]
                firsts[convs[0]] = (0, 1)
                for i in range(len(convs) - 1):
                    norm = names[i] + '.bn' if getattr(layers[i], 'bn', None) is not None \
                        else None
                    inner.append(Producer(convs[i], norm, {convs[i + 1]: (0, 1)}))
        norm = f'{p}.shared_conv.bn' if getattr(head.shared_conv, 'bn', None) is not None \
            else None
        groups = [WidthGroup(f'{p}.share_conv_channel',
                             [Producer(f'{p}.shared_conv.conv', norm, firsts)])]
        if inner:
            groups.append(WidthGroup(f'{p}.separate_head.head_conv', inner))
        return groups

    def rewrite(self, model_cfg, widths):
        head = model_cfg[self.prefix + 'bbox_head']
        for key, width in widths.items():
            if key.endswith('share_conv_channel'):
                head['share_conv_channel'] = int(width)
            elif key.endswith('head_conv'):
                head['separate_head']['head_conv'] = int(width)


def _first_conv_name(backbone: nn.Module) -> str:
    return next(n for n, m in backbone.named_modules() if isinstance(m, nn.Conv2d))


def _first_conv(backbone: nn.Module) -> nn.Module:
    return dict(backbone.named_modules())[_first_conv_name(backbone)]


class CombinedChannels(ChannelGraph):
    """Several graphs of one model (e.g. its 3D encoder and its 2D parts) as one.

    Args:
        graphs (list[ChannelGraph]): the graphs, each describing its own producers.
        model (nn.Module): the model they describe.
    """

    def __init__(self, graphs: List[ChannelGraph], model: nn.Module):
        self.graphs = graphs
        self.keys = [{k for g in graph.groups(model) for k in g.keys} for graph in graphs]

    def groups(self, model):
        return [g for graph in self.graphs for g in graph.groups(model)]

    def rewrite(self, model_cfg, widths):
        for graph, keys in zip(self.graphs, self.keys):
            graph.rewrite(model_cfg, {k: v for k, v in widths.items() if k in keys})


def find_channel_graph(model: nn.Module) -> ChannelGraph:
    """Every registered graph that describes part of ``model``, combined."""
    graphs = [g for g in (cls.match(model) for cls in CHANNEL_GRAPHS.module_dict.values())
              if g is not None]
    if not graphs:
        raise UserError(f'no registered channel graph describes {type(model).__name__} '
                         f'(known: {sorted(CHANNEL_GRAPHS.module_dict)}); channel pruning '
                         'needs one')
    return graphs[0] if len(graphs) == 1 else CombinedChannels(graphs, model)


def producer_index(groups: Sequence[WidthGroup]) -> Dict[str, WidthGroup]:
    """Producer layer name -> its width group."""
    return {pr.layer: g for g in groups for pr in g.producers}
