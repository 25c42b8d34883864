"""Joint FLOPs counting from real forward passes.

Forward hooks record, per layer and call, the active sites and the (input, output) pairs at
every kernel offset; MACs then follow from the weights (or any candidate mask) as
sum_k pairs_k * nnz(W_k). Sparse convs are counted from their coordinates (see pairs.py);
dense layers from their tensor shapes. A module may override its pair count by defining
``flops_pairs(inputs, output) -> (K,) tensor`` (the spatial-pruning modules do, so that only
the outputs they really compute are counted).

mmengine.analysis (fvcore-style tracing) counts dense layers but cannot see spconv's
SparseConvTensor, so it would miss the 3D backbone entirely; hooks see both.
"""
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import ClassVar, Dict, Iterable, List, Optional

import torch
from torch import nn

from ..sparse.native_rulebook import call_pair_counts
from .layouts import DENSE_CONV, DENSE_DECONV, PRUNABLE, is_sparse_conv, kernel_volume, offset_view
from .pairs import count_pairs

NORM = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
ACT = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Sigmoid, nn.GELU, nn.SiLU, nn.Hardswish)

# detector attribute -> part name (the rows of the DM3D paper's Tab. 4)
PARTS = OrderedDict([
    ('voxel_encoder', 'voxel encoder'), ('pts_voxel_encoder', 'voxel encoder'),
    ('middle_encoder', '3D backbone'), ('pts_middle_encoder', '3D backbone'),
    ('backbone', '2D backbone'), ('pts_backbone', '2D backbone'),
    ('neck', 'neck'), ('pts_neck', 'neck'),
    ('bbox_head', 'head'), ('pts_bbox_head', 'head'), ('rpn_head', 'head'),
    ('roi_head', 'head'), ('points_encoder', 'voxel encoder'),
])


BOPS_PER_MAC = 64  # a 64-bit XNOR-popcount word does 64 binary multiply-accumulates


def part_of(name: str) -> str:
    return PARTS.get(name.split('.')[0], 'other')


@dataclass
class LayerStats:
    """What one prunable layer did over the counted frames (totals, not means)."""
    name: str
    module: nn.Module
    kind: str
    part: str
    pairs: torch.Tensor  # (K,) int64, summed over calls
    calls: int = 0
    sites_in: int = 0
    sites_out: int = 0
    bias_flops: int = 0
    # is the spatial sparsity's saving work really skipped? 'skipped' (the kernel ran over
    # the counted pairs only), 'counted only' (a dense kernel ran and was masked) or 'none'
    spatial_saving: str = 'none'
    # binary operations (sign inputs and weights: XNOR-popcount) instead of MACs; counted as
    # BOPs and, in every MAC total, as BOPs / 64 MAC equivalents (the usual convention)
    binary: bool = False

    @property
    def weights_per_offset(self) -> int:
        return offset_view(self.module).shape[1]

    def nnz_per_offset(self, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Non-zero weights per kernel offset, of the weights or of a candidate mask."""
        src = self.module.weight.detach() if mask is None else mask
        return (offset_view(self.module, src) != 0).sum(1).long().cpu()

    def ops(self, mask: Optional[torch.Tensor] = None) -> int:
        """Multiply-accumulates (or binary ops) done: sum_k pairs_k x nnz_k."""
        return int((self.pairs * self.nnz_per_offset(mask)).sum())

    def macs(self, mask: Optional[torch.Tensor] = None) -> float:
        """Effective MACs (MAC equivalents, BOPs / 64, for a binary layer)."""
        ops = self.ops(mask)
        return ops / BOPS_PER_MAC if self.binary else ops

    def bops(self) -> int:
        """Binary operations done (0 for a full-precision layer)."""
        return self.ops() if self.binary else 0

    @property
    def dense_macs(self) -> float:
        ops = int(self.pairs.sum()) * self.weights_per_offset
        return ops / BOPS_PER_MAC if self.binary else ops


@dataclass
class AuxStats:
    """Non-prunable per-element work: normalisation and activation layers."""
    name: str
    kind: str
    part: str
    flops: int = 0


@dataclass
class CountedWork:
    """What the hooks of a counter recorded over a stretch of a forward (per-layer and
    per-element increments), kept to be added to a counter again where that stretch is
    skipped and its result reused (:meth:`FlopsCounter.replay`).

    Args:
        layers (dict[str, LayerStats]): the increments of the prunable layers.
        aux (dict[str, AuxStats]): the increments of the norms and activations.
    """
    layers: Dict[str, LayerStats] = field(default_factory=OrderedDict)
    aux: Dict[str, AuxStats] = field(default_factory=OrderedDict)


@dataclass
class FlopsCounter:
    """Hooks a model; every forward inside ``with counter:`` is counted."""
    model: nn.Module
    layers: Dict[str, LayerStats] = field(default_factory=OrderedDict)
    aux: Dict[str, AuxStats] = field(default_factory=OrderedDict)
    frames: int = 0
    _entered: ClassVar[List['FlopsCounter']] = []  # the counters inside their ``with``

    def __post_init__(self):
        self._handles = []
        self._names: Dict[int, str] = {}  # id(module) -> name, of the modules hooked

    def __enter__(self):
        for name, module in self.model.named_modules():
            if isinstance(module, PRUNABLE):
                hook = self._layer_hook(name)
            elif isinstance(module, NORM + ACT):
                hook = self._aux_hook(name)
            else:
                continue
            hook.counts_flops = True  # see only_counting_hooks
            self._handles.append(module.register_forward_hook(hook))
            self._names[id(module)] = name
        FlopsCounter._entered.append(self)
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []
        self._names = {}
        FlopsCounter._entered[:] = [c for c in FlopsCounter._entered if c is not self]

    @classmethod
    def active(cls) -> List['FlopsCounter']:
        """The counters counting now (inside their ``with`` block), oldest first."""
        return list(cls._entered)

    def snapshot(self) -> Dict[str, tuple]:
        """The state of every record now, for :meth:`since`."""
        snap = {('layer', n): (st.pairs.clone(), st.calls, st.sites_in, st.sites_out,
                               st.bias_flops) for n, st in self.layers.items()}
        snap.update({('aux', n): st.flops for n, st in self.aux.items()})
        return snap

    def since(self, snap: Dict[str, tuple]) -> CountedWork:
        """The work recorded after ``snap`` (a :meth:`snapshot` of this counter)."""
        work = CountedWork()
        for n, st in self.layers.items():
            pairs, calls, s_in, s_out, bias = snap.get(
                ('layer', n), (torch.zeros_like(st.pairs), 0, 0, 0, 0))
            if st.calls != calls:
                work.layers[n] = LayerStats(n, st.module, st.kind, st.part, st.pairs - pairs,
                                            st.calls - calls, st.sites_in - s_in,
                                            st.sites_out - s_out, st.bias_flops - bias,
                                            st.spatial_saving, st.binary)
        for n, st in self.aux.items():
            flops = st.flops - snap.get(('aux', n), 0)
            if flops:
                work.aux[n] = AuxStats(n, st.kind, st.part, flops)
        return work

    def replay(self, work: CountedWork) -> None:
        """Add ``work`` (recorded by :meth:`since`) as if its forward had run again."""
        for n, d in work.layers.items():
            st = self.layers.get(n)
            if st is None:
                st = self.layers[n] = LayerStats(n, d.module, d.kind, d.part,
                                                 torch.zeros_like(d.pairs))
            st.pairs += d.pairs
            st.binary = d.binary
            st.spatial_saving = _merge_saving(st.spatial_saving if st.calls else None,
                                              d.spatial_saving)
            st.calls += d.calls
            st.sites_in += d.sites_in
            st.sites_out += d.sites_out
            st.bias_flops += d.bias_flops
        for n, d in work.aux.items():
            self.aux.setdefault(n, AuxStats(n, d.kind, d.part)).flops += d.flops

    def add_frames(self, n: int):
        self.frames += int(n)

    # -- what a call did ----------------------------------------------------------
    def record_layer(self, name: str, module: nn.Module, pairs: torch.Tensor, sites_in: int,
                     sites_out: int, out_elems: int) -> None:
        """Add one call of the prunable layer ``name``: pairs per kernel offset, active sites
        in and out, output elements (the bias work, where it has a bias)."""
        st = self.layers.get(name)
        if st is None:
            st = self.layers[name] = LayerStats(
                name, module, type(module).__name__, part_of(name),
                torch.zeros(kernel_volume(module), dtype=torch.long))
        st.pairs += pairs.cpu()  # counts are kept on the CPU whatever the model's device
        st.binary = bool(getattr(module, 'computes_bops', False))
        st.spatial_saving = _merge_saving(st.spatial_saving if st.calls else None,
                                          spatial_saving(module))
        st.calls += 1
        st.sites_in += int(sites_in)
        st.sites_out += int(sites_out)
        if getattr(module, 'bias', None) is not None:
            st.bias_flops += int(out_elems)

    def record_aux(self, name: str, module: nn.Module, elements: int) -> None:
        """Add one call of the norm or activation ``name`` over ``elements`` values."""
        st = self.aux.setdefault(name, AuxStats(name, type(module).__name__, part_of(name)))
        per = 2 if isinstance(module, NORM) else 1  # scale + shift, or one op
        st.flops += per * int(elements)

    # -- hooks ---------------------------------------------------------------------
    def _layer_hook(self, name):
        def hook(module, inputs, output):
            self.record_layer(name, module, *layer_pairs(module, inputs, output))
        return hook

    def _aux_hook(self, name):
        def hook(module, inputs, output):
            x = inputs[0]
            x = getattr(x, 'features', x)  # spconv tensors carry features (N, C)
            self.record_aux(name, module, x.numel())
        return hook

    # -- summaries -----------------------------------------------------------------
    def total_macs(self, masks: Optional[Dict[str, torch.Tensor]] = None,
                   names: Optional[Iterable[str]] = None) -> int:
        masks = masks or {}
        names = self.layers.keys() if names is None else names
        return sum(self.layers[n].macs(masks.get(n)) for n in names)


def only_counting_hooks(module: nn.Module) -> bool:
    """Whether every forward hook on ``module`` and its submodules (and every global one) is
    a :class:`FlopsCounter`'s: a path that runs such modules outside their ``forward`` (on
    feature rows) keeps the count by reporting each call (:func:`count_call`,
    :func:`count_elementwise`); any other hook needs the modules called."""
    from torch.nn.modules import module as nn_module
    if nn_module._global_forward_hooks or nn_module._global_forward_pre_hooks:
        return False
    return all(not m._forward_pre_hooks and
               all(getattr(h, 'counts_flops', False) for h in m._forward_hooks.values())
               for m in module.modules())


def count_call(module: nn.Module, pairs: torch.Tensor, sites_in: int, sites_out: int,
               out_elems: int) -> None:
    """Report a call of the prunable ``module`` computed outside its ``forward`` to every
    counter counting it (see :meth:`FlopsCounter.record_layer`)."""
    for counter in FlopsCounter.active():
        name = counter._names.get(id(module))
        if name is not None:
            counter.record_layer(name, module, pairs, sites_in, sites_out, out_elems)


def count_elementwise(module: nn.Module, elements: int) -> None:
    """Report a call of the norm or activation ``module`` over ``elements`` values computed
    outside its ``forward`` to every counter counting it."""
    for counter in FlopsCounter.active():
        name = counter._names.get(id(module))
        if name is not None:
            counter.record_aux(name, module, elements)


def spatial_saving(module: nn.Module) -> str:
    """How a call of ``module`` realises its spatial sparsity: sparse convs multiply their
    rulebook's pairs only ('skipped'); modules that may fall back to a masked dense kernel
    say so in their ``spatial_saving`` attribute; dense layers have none ('none')."""
    own = getattr(module, 'spatial_saving', None)
    if own is not None:
        return own
    return 'skipped' if is_sparse_conv(module) else 'none'


def _merge_saving(old: Optional[str], new: str) -> str:
    """Over several calls: one masked-dense call makes the layer's saving 'counted only'."""
    if old is None or old == new:
        return new
    return 'counted only' if 'counted only' in (old, new) else new


def layer_pairs(module: nn.Module, inputs, output):
    """(pairs per offset, sites in, sites out, output elements) of one call."""
    custom = getattr(module, 'flops_pairs', None)
    x = inputs[0]
    if is_sparse_conv(module):
        pairs = custom(inputs, output) if custom else sparse_conv_pairs(module, x, output)
        return (pairs, int(x.indices.shape[0]), int(output.indices.shape[0]),
                int(output.features.numel()))
    if custom:
        pairs = custom(inputs, output)
    elif isinstance(module, nn.Linear):
        pairs = torch.tensor([x.numel() // x.shape[-1]])
    elif isinstance(module, DENSE_CONV):
        positions = output.shape[0] * output[0, 0].numel()
        pairs = torch.full((kernel_volume(module), ), positions, dtype=torch.long)
    elif isinstance(module, DENSE_DECONV):
        positions = x.shape[0] * x[0, 0].numel()
        pairs = torch.full((kernel_volume(module), ), positions, dtype=torch.long)
    else:  # pragma: no cover - PRUNABLE is exhaustive above
        raise TypeError(type(module))
    sites_in = x.numel() // x.shape[1] if x.dim() > 1 else 1
    sites_out = output.numel() // output.shape[1] if output.dim() > 1 else 1
    if isinstance(module, nn.Linear):
        sites_in = sites_out = int(pairs[0])
    return pairs.long(), int(sites_in), int(sites_out), int(output.numel())


def sparse_conv_pairs(module, x, out) -> torch.Tensor:
    """Pairs per offset of an spconv / mmcv sparse conv call: read from the rulebook spconv's
    native CPU conv ran (``call_pair_counts``), else counted from the coordinates."""
    native = call_pair_counts(module, x, out)
    if native is not None:
        return native
    ks, dil = module.kernel_size, module.dilation
    if getattr(module, 'subm', False):
        k3 = (ks, ) * 3 if isinstance(ks, int) else tuple(ks)
        d3 = (dil, ) * 3 if isinstance(dil, int) else tuple(dil)
        pad = tuple((k - 1) // 2 * d for k, d in zip(k3, d3))
        return count_pairs(x.indices, x.indices, ks, 1, pad, dil)
    if getattr(module, 'inverse', False):
        # an inverse conv undoes the regular conv that made these indices: same geometry
        data = x.indice_dict[module.indice_key]
        return count_pairs(out.indices, x.indices, data.ksize, data.stride, data.padding,
                           data.dilation)
    if getattr(module, 'transposed', False):  # coarse input scattered to fine outputs
        return count_pairs(out.indices, x.indices, ks, module.stride, module.padding, dil)
    return count_pairs(x.indices, out.indices, ks, module.stride, module.padding, dil)
