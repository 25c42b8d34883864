"""SPSSSparseEncoder: mmdet3d's SparseEncoder with SPSS-Conv spatial pruning per stage."""
from typing import Callable, Optional, Sequence, Union

import torch
from mmdet3d.models.middle_encoders import SparseEncoder
from mmdet3d.registry import MODELS
from spconv.pytorch import SparseConv3d, SparseConvTensor, SparseSequential, SubMConv3d
from spconv.pytorch.modules import is_spconv_module
from spconv.pytorch.ops import get_conv_output_size

from ..errors import UserError
from .backends import require_backend
from .bev_scatter import sparse_to_bev
from .spss_conv import SPSSBlock, SPSSSparseConv3d, SPSSSubMConv3d
from .stage_memo import StageMemo


def _per_stage(value, num_stages: int, name: str):
    values = [value] * num_stages if isinstance(value, (int, float)) else list(value)
    if len(values) != num_stages:
        raise UserError(f'{name} needs one value per encoder stage ({num_stages}), '
                         f'got {len(values)}')
    return values


def _spss_like(conv, cls, prune_ratio, importance, gate):
    """An SPSS conv with the geometry of ``conv`` (same weight shape and state_dict keys)."""
    new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
              padding=conv.padding, dilation=conv.dilation, bias=conv.bias is not None,
              indice_key=conv.indice_key, prune_ratio=prune_ratio, importance=importance,
              gate=gate)
    new.weight.data.copy_(conv.weight.data)
    if conv.bias is not None:
        new.bias.data.copy_(conv.bias.data)
    return new


@MODELS.register_module()
class SPSSSparseEncoder(SparseEncoder):
    """SparseEncoder whose encoder stages prune voxels as SPSS-Conv does. The stem
    ``conv_input`` and ``conv_out`` stay dense (they are outside the stages).

    Args:
        *args: SparseEncoder's arguments.
        prune_ratios (float | Sequence[float]): fraction of voxels pruned, one value for all
            stages or one per stage. In a stage, every submanifold conv with equal in/out
            channels computes only its kept voxels, and (``prune_downsample``) the strided
            conv dilates only them. Defaults to 0.5.
        importance (str): 'magnitude' (SPS-Conv: sigmoid of mean |feature|), 'learned' (a
            1-channel subm conv trained through the gate) or 'foreground' (a linear scorer
            trained against the GT boxes by SPSSVoxelNet / SPSSCenterPoint).
            Defaults to 'magnitude'.
        gate (bool, optional): multiply the features by their importance (SPS-Conv's soft
            gate, so training shapes what is important). None: only for 'learned'.
        prune_downsample (bool): prune the strided convs too. Defaults to True.
        passthrough (str): what the pruned voxels of a submanifold conv skip: 'block' (the
            whole conv-norm-act block, see SPSSBlock) or 'conv' (SPS-Conv: the conv only; the
            block's norm and activation still apply to them; docs/spatial.md compares
            them). Defaults to 'block'.
        run_ratios (Sequence[float], optional): the fraction of voxels the pruning convs of
            each stage prune when the model runs, where it differs from ``prune_ratios``
            (which decide which convs are pruning convs): the keep ratios a joint allocation
            chose (``joint/sites.py``); 0 runs a stage's pruning convs unpruned. None:
            ``prune_ratios``. Defaults to None.
        min_prune_channels (int): convs with fewer output channels than this stay dense
            spconv layers: on CPU, pruning a narrow conv costs more in scoring, keep masks
            and restricted rulebooks than its small GEMM saves (``tools/bench.py spss_layer_speed``
            measures where it starts to pay). Defaults to 0 (prune every conv).
        score_widths (dict, optional): ``dict(base_channels=..., encoder_channels=...)``
            of the encoder as trained, where channel pruning has since slimmed it: each
            pruning conv's 'magnitude' score keeps dividing by the channels its input had
            then (the cut channels were zero), so the slim encoder computes what the pruned
            one did (``structured/channel_graph.py`` writes it). None: the encoder's own
            widths. Defaults to None.
        backend (str): sparse-conv library; 'spconv' (torchsparse is not installed and
            fails with a clear message). Defaults to 'spconv'.
        **kwargs: SparseEncoder's keyword arguments.
    """

    def __init__(self, *args, prune_ratios: Union[float, Sequence[float]] = 0.5,
                 importance: str = 'magnitude', gate: Optional[bool] = None,
                 prune_downsample: bool = True, passthrough: str = 'block',
                 run_ratios: Optional[Sequence[float]] = None,
                 min_prune_channels: int = 0, score_widths: Optional[dict] = None,
                 backend: str = 'spconv', **kwargs):
        require_backend(backend)
        if passthrough not in ('conv', 'block'):
            raise UserError(f"passthrough must be 'conv' or 'block', got {passthrough!r}")
        super().__init__(*args, **kwargs)
        self.prune_ratios = _per_stage(prune_ratios, self.stage_num, 'prune_ratios')
        for ratio, stage in zip(self.prune_ratios, self.encoder_layers):
            if ratio <= 0:
                continue
            for parent in list(stage.modules()):
                for name, child in list(parent.named_children()):
                    if getattr(child, 'out_channels', 0) < min_prune_channels:
                        continue
                    if type(child) is SubMConv3d and child.in_channels == child.out_channels:
                        cls = SPSSSubMConv3d
                    elif type(child) is SparseConv3d and prune_downsample:
                        cls = SPSSSparseConv3d
                    else:
                        continue
                    setattr(parent, name, _spss_like(child, cls, ratio, importance, gate))
            if passthrough == 'block':
                _wrap_blocks(stage)
        if run_ratios is not None:
            for ratio, stage in zip(_per_stage(run_ratios, self.stage_num, 'run_ratios'),
                                    self.encoder_layers):
                for conv in stage.modules():
                    if isinstance(conv, (SPSSSubMConv3d, SPSSSparseConv3d)):
                        if not 0 <= ratio < 1:
                            raise UserError(f'run_ratios must be in [0, 1), got {ratio}')
                        conv.prune_ratio = float(ratio)
        if score_widths is not None:
            self._score_as_trained(score_widths)
        self.stage_memo: Optional[StageMemo] = None  # set for forwards that share stages

    def stage_settings(self, i: int) -> tuple:
        """The spatial settings acting in stage ``i``: its pruning convs' ratios."""
        return tuple(float(c.prune_ratio) for c in self.encoder_layers[i].modules()
                     if isinstance(c, (SPSSSubMConv3d, SPSSSparseConv3d)))

    def _score_as_trained(self, widths: dict) -> None:
        """Every pruning conv's score divides by its input's width as trained."""
        trained = [int(widths['base_channels'])] + [
            int(w) for stage in widths['encoder_channels'] for w in stage]
        blocks = [block for stage in self.encoder_layers for block in stage]
        if len(blocks) + 1 != len(trained):
            raise UserError(f'score_widths has {len(trained) - 1} encoder widths, the '
                             f'encoder {len(blocks)} blocks')
        for width_in, block in zip(trained, blocks):
            conv = next(iter(block.children()), None)
            if isinstance(conv, (SPSSSubMConv3d, SPSSSparseConv3d)):
                conv.importance.channels = width_in

    def forward(self, voxel_features, coors, batch_size):
        """SparseEncoder's forward; no voxels at all give an all-zero BEV map."""
        if coors.shape[0] == 0:
            return empty_bev(self, voxel_features, batch_size)
        return encode(self, voxel_features, coors, batch_size, memo=self.stage_memo)


def _wrap_blocks(stage):
    """SparseSequential blocks led by an SPSSSubMConv3d -> SPSSBlock (same children)."""
    for parent in list(stage.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is SparseSequential and len(child) > 1 and \
                    isinstance(child[0], SPSSSubMConv3d) and \
                    not any(is_spconv_module(m) for m in list(child)[1:]):
                setattr(parent, name, SPSSBlock(*child))


def encode(encoder: SparseEncoder, voxel_features, coors, batch_size,
           after_stage: Optional[Callable] = None, memo: Optional[StageMemo] = None,
           reads: Sequence[torch.Tensor] = ()):
    """SparseEncoder's forward (full precision, as mmdet3d runs it), with the BEV map written
    by ``sparse_to_bev`` and an optional ``after_stage(i, x) -> x`` between stages.

    ``memo``: a :class:`StageMemo` to resume from the deepest stage already run on this frame
    with the same settings (the encoder's ``stage_settings(i)``); ``reads``: tensors other
    than the inputs that the stages depend on (digested into the memo's key). A 0-d tensor
    ``batch_size`` (mmdet3d's CenterPoint passes one) is read once here: spconv would read it
    at every conv."""
    batch_size = int(batch_size)
    with torch.autocast(voxel_features.device.type, enabled=False):
        stages = list(encoder.encoder_layers)
        run = None if memo is None else memo.begin(
            encoder, (voxel_features, coors, *reads), batch_size, len(stages))
        encode_features = [] if run is None else run.resume()
        if encode_features:
            x = encode_features[-1]
        else:
            x = SparseConvTensor(voxel_features, coors.int(), encoder.sparse_shape,
                                 batch_size)
            x = encoder.conv_input(x)
        for i in range(len(encode_features), len(stages)):
            x = stages[i](x)
            if after_stage is not None:
                x = after_stage(i, x)
            encode_features.append(x)
            if run is not None:
                run.store(i, x)
        bev = sparse_to_bev(encoder.conv_out(encode_features[-1]))
    return (bev, encode_features) if encoder.return_middle_feats else bev


def empty_bev(encoder: SparseEncoder, voxel_features, batch_size):
    """The all-zero output a SparseEncoder would give without voxels (spconv cannot run on
    zero voxels): shape from the strided convs' output-size formula, in forward order."""
    shape = list(encoder.sparse_shape)
    for m in encoder.modules():
        if isinstance(m, SparseConv3d):
            shape = get_conv_output_size(shape, m.kernel_size, m.stride, m.padding, m.dilation)
    d, h, w = shape
    zeros = voxel_features.new_zeros(batch_size, encoder.output_channels * d, h, w)
    return (zeros, []) if encoder.return_middle_feats else zeros
