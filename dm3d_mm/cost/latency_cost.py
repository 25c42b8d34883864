"""A budget in measured latency (``DM3DPruner(cost='latency')``; the ``BUDGET_COSTS``
pieces are listed in ``cost/budget_cost.py``).

- ``'latency'`` (:class:`LatencyCost`): seconds per frame on the device the pruner runs on.
  Every conv that ran in a timed forward is timed again alone, on the input it saw there, at
  a grid of (kept input channels x kept output channels) widths (weights and input sliced:
  exactly what a slim model of those widths computes); a mask's cost is the time
  interpolated (bilinearly) at the widths it keeps. What no conv accounts for (voxelization,
  pair generation, norms, post-processing) is a fixed remainder: the whole detector's
  measured time less its convs' dense times. An unstructured mask keeps every channel, so
  it costs the dense time, as it does on the machine; a removed channel saves what its conv
  and its consumers' input slices really take. On a CPU, where spconv's encoder time barely
  moves with its widths while the 2D convs' time does, the DP then spends the budget where
  time is saved instead of where FLOPs are.

Under the joint allocation (spatial keep ratios searched with the weights) every combination
of keep ratios gets its own cost model (``option_pricer``). For FLOPs it is the combination's
own count. For latency the conv tables are timed once, with the ratios in force before
pruning, and each conv's times are scaled by its MACs under the combination over its MACs
under those ratios (a conv's time at given widths taken as proportional to the pairs it
computes); the whole detector is timed again under every combination, so the remainder
(voxelization, pair generation, norms) is measured, not scaled. With
``time_every_combination=True`` the tables too are timed afresh under every combination
(no scaling: right where time is not proportional to pairs, e.g. a sparse BEV conv that
switches to its dense path above ``dense_above`` active pixels; one table timing per
combination).

What a pruned model costs is measured on it, not read from the tables (``measure``): for
latency the pruner times the model as it will run (exported slim where channels were
removed) and allocates again, the target scaled, while that time is over the budget.
"""
import copy
import time
from collections import OrderedDict
from typing import Callable, Dict, Optional, Sequence

import torch
from mmengine import dist
from torch import Tensor, nn

from ..errors import UserError
from ..registry import BUDGET_COSTS
from .cost_model import CostModel
from .layouts import in_channel_axis, kept_in_channels, kept_out_channels, mask_at, out_channel_axis


def kept_widths(layer: nn.Module, mask: Optional[Tensor]):
    """(kept input channels, kept output channels) of ``layer`` under ``mask`` (None: all)."""
    w = layer.weight
    if mask is None:
        return w.shape[in_channel_axis(layer)], w.shape[out_channel_axis(layer)]
    return (int(kept_in_channels(layer, mask).sum()), int(kept_out_channels(layer, mask).sum()))


def _width_grid(channels: int, fractions: Sequence[float]) -> Tensor:
    """Widths timed: 1 (what a slim model keeps of a fully removed group), the fractions of
    ``channels`` and ``channels``."""
    widths = [1, channels] + [max(1, min(channels, round(f * channels))) for f in fractions]
    return torch.unique(torch.tensor(widths, dtype=torch.long))


def _interp(grid: Tensor, value: int):
    """(lower index, upper index, weight of the upper) of ``value`` on a sorted grid, the
    value clamped into the grid (0 kept channels: the time of 1, which a slim model keeps)."""
    v = min(max(value, int(grid[0])), int(grid[-1]))
    hi = int(torch.searchsorted(grid, torch.tensor(v)))
    if int(grid[hi]) == v or hi == 0:
        return hi, hi, 0.0
    lo = hi - 1
    return lo, hi, (v - int(grid[lo])) / float(int(grid[hi]) - int(grid[lo]))


class LatencyTable:
    """Seconds per frame of one conv on a grid of (kept input, kept output) widths.

    Args:
        cin (Tensor): sorted input widths timed.
        cout (Tensor): sorted output widths timed.
        seconds (Tensor): (len(cin), len(cout)) seconds per frame.
    """

    def __init__(self, cin: Tensor, cout: Tensor, seconds: Tensor):
        self.cin, self.cout, self.seconds = cin, cout, seconds.double()

    def at(self, cin: int, cout: int) -> float:
        """Bilinear interpolation (widths clamped into the grid)."""
        i0, i1, a = _interp(self.cin, cin)
        j0, j1, b = _interp(self.cout, cout)
        s = self.seconds
        return float((1 - a) * ((1 - b) * s[i0, j0] + b * s[i0, j1])
                     + a * ((1 - b) * s[i1, j0] + b * s[i1, j1]))


class LatencyCostModel:
    """Seconds per frame of a detector under any set of masks (see the module docstring).

    Args:
        flops (CostModel): the joint FLOPs model of the same calibration pass (its layer
            list: which layers are prunable, their modules and parts).
        tables (dict[str, LatencyTable]): every timed conv.
        whole (float): seconds per frame of the whole dense detector.
    """
    unit = 'seconds'

    def __init__(self, flops: CostModel, tables: Dict[str, LatencyTable], whole: float):
        missing = [n for n in flops.prunable if n not in tables]
        if missing:
            raise KeyError(f'no latency measured for prunable layers {missing[:5]}')
        self.flops, self.tables = flops, tables
        self.layers, self.prunable = flops.layers, flops.prunable
        self.fixed = max(0.0, whole - sum(self.layer_cost(n) for n in tables))
        self._prunable = set(self.prunable)

    def layer_cost(self, name: str, mask: Optional[Tensor] = None) -> float:
        """Seconds per frame of a timed layer at ``mask`` (None: dense)."""
        return self.tables[name].at(*kept_widths(self.layers[name].module, mask))

    def curve_costs(self, name: str, order: Tensor, counts: Tensor,
                    kept: Optional[Tensor] = None) -> Tensor:
        """Seconds per frame of a layer when the first counts[k] entries of ``order`` are
        pruned, for every k (``kept``, the FLOPs model's per-offset table, is not needed:
        a table reads the widths each mask keeps)."""
        w = self.layers[name].module.weight
        return torch.tensor([self.layer_cost(name, mask_at(w, order, int(c))) for c in counts],
                            dtype=torch.float64)

    def total(self, masks: Optional[Dict[str, Tensor]] = None) -> float:
        """Seconds per frame of the whole detector with ``masks`` (on any timed layer)."""
        masks = masks or {}
        return self.fixed + sum(self.layer_cost(n, masks.get(n)) for n in self.tables)

    @property
    def floor(self) -> float:
        """The cost of everything but the prunable layers (dense)."""
        return self.fixed + sum(self.layer_cost(n) for n in self.tables
                                if n not in self._prunable)

    @staticmethod
    def describe(value: float) -> str:
        return f'{value * 1e3:.2f} ms'


def _swap(layer: nn.Module, cin: int, cout: int):
    """A shallow copy of ``layer`` computing only the first cin inputs and cout outputs."""
    slim = copy.copy(layer)
    slim._parameters = dict(layer._parameters)
    slim._forward_pre_hooks, slim._forward_hooks = OrderedDict(), OrderedDict()
    w = layer.weight.detach().narrow(out_channel_axis(layer), 0, cout)
    # contiguous, as a slim model's weight is (spconv's CUDA implicit GEMM requires it)
    slim._parameters['weight'] = nn.Parameter(
        w.narrow(in_channel_axis(layer), 0, cin).contiguous(), requires_grad=False)
    if getattr(layer, 'bias', None) is not None:
        slim._parameters['bias'] = nn.Parameter(layer.bias.detach()[:cout], requires_grad=False)
    for attr, v in (('in_channels', cin), ('out_channels', cout)):
        if hasattr(layer, attr):
            object.__setattr__(slim, attr, v)
    return slim


def _narrow_input(x, cin: int):
    if isinstance(x, Tensor):
        return x[:, :cin].contiguous()
    return x.replace_feature(x.features[:, :cin].contiguous())  # spconv SparseConvTensor


def best_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Best of ``repeats`` wall times of ``fn()`` (CUDA synchronised), after one warm-up."""
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    fn()
    best = float('inf')
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def time_conv(layer: nn.Module, inputs: Sequence, cin: int, cout: int, repeats: int) -> float:
    """Seconds of ``layer`` at widths (cin, cout) over its recorded inputs (one frame)."""
    slim = _swap(layer, cin, cout)
    xs = [_narrow_input(x, cin) for x in inputs]
    dev = layer.weight.device
    with torch.no_grad():
        return best_seconds(lambda: [slim(x) for x in xs], repeats, dev)


@BUDGET_COSTS.register_module(name='latency')
class LatencyCost:
    """The DP counts measured seconds per frame (see the module docstring).

    Args:
        widths (Sequence[float]): fractions of each conv's input and output channels timed
            (the full width is always timed). Defaults to (0.125, 0.25, 0.5, 0.75).
        repeats (int): timings per point, the best kept. Defaults to 3.
        frames (int): calibration frames timed (the first ones). Defaults to 1.
        probe (callable, optional): ``probe(name, layer, inputs, cin, cout) -> seconds per
            frame`` in place of timing (``inputs``: the layer's inputs over the timed frames;
            for tests, or a latency table from another device). Defaults to None.
        whole_probe (callable, optional): ``whole_probe(model, batches) -> seconds per frame``
            of the whole detector in place of timing it (for tests). Defaults to None.
        time_every_combination (bool): under the joint allocation, time the conv tables
            under every combination of keep ratios instead of scaling one timing by MACs.
            Defaults to False.
    """
    unit = 'seconds'

    def __init__(self, widths: Sequence[float] = (0.125, 0.25, 0.5, 0.75), repeats: int = 3,
                 frames: int = 1, probe: Optional[Callable] = None,
                 whole_probe: Optional[Callable] = None, time_every_combination: bool = False):
        if not widths or any(not 0 < f <= 1 for f in widths):
            raise UserError(f'latency widths are fractions in (0, 1], got {widths!r}')
        if int(repeats) < 1 or int(frames) < 1:
            raise UserError('latency repeats and frames must be at least 1')
        self.widths, self.repeats, self.frames = tuple(widths), int(repeats), int(frames)
        self.probe, self.whole_probe = probe, whole_probe
        self.time_every_combination = bool(time_every_combination)

    def build(self, model: nn.Module, batches: Sequence[dict],
              flops: CostModel) -> LatencyCostModel:
        """Time the model as it is now (see the module docstring).

        Args:
            model (nn.Module): the detector, eval mode.
            batches (Sequence[dict]): calibration batches (the first ``frames`` are timed).
            flops (CostModel): the FLOPs model of the same pass (its layers and parts).

        Returns:
            LatencyCostModel: seconds per frame under any masks.
        """
        tables, whole = _rank0(lambda: (self.time_tables(model, batches, flops),
                                        self.whole_seconds(model, batches)))
        return LatencyCostModel(flops, tables, whole)

    def option_pricer(self, model: nn.Module, batches: Sequence[dict],
                      reference: CostModel) -> Callable[[CostModel], LatencyCostModel]:
        """Times the conv tables now; returns the latency model of one spatial combination
        (see the module docstring).

        Args:
            model (nn.Module): the detector, eval mode, with the keep ratios the tables are
                timed at in force.
            batches (Sequence[dict]): calibration batches.
            reference (CostModel): the FLOPs count with those ratios.

        Returns:
            Callable: ``price(counted)``: called with a combination's ratios in force and its
            FLOPs count, times the whole detector under it and scales every conv's table by
            the conv's MACs there over its MACs in ``reference`` (or, with
            ``time_every_combination``, times the tables under it).
        """
        if self.time_every_combination:
            return lambda counted: LatencyCostModel(
                counted, *_rank0(lambda: (self.time_tables(model, batches, counted),
                                          self.whole_seconds(model, batches))))
        tables = _rank0(lambda: self.time_tables(model, batches, reference))

        def price(counted: CostModel) -> LatencyCostModel:
            whole = _rank0(lambda: self.whole_seconds(model, batches))
            scaled = {}
            for n, t in tables.items():
                ref = reference.layer_dense_macs(n) if n in reference.layers else 0.0
                now = counted.layer_dense_macs(n) if n in counted.layers else 0.0
                scale = now / ref if ref > 0 else 1.0
                scaled[n] = LatencyTable(t.cin, t.cout, t.seconds * scale)
            return LatencyCostModel(counted, scaled, whole)
        return price

    def measure(self, runnable: Callable[[], nn.Module], batches: Sequence[dict],
                counted: CostModel, masks: Dict[str, Tensor]) -> float:
        """The pruned model's wall time per frame, timed as it will run (the tables only
        predict it: isolated conv timings need not add up to the whole detector's).

        Args:
            runnable (Callable): ``runnable() -> model`` as it will run (slim where channels
                were removed: masked channels cost their full time).
            batches (Sequence[dict]): calibration batches (the first ``frames`` are timed).
            counted (CostModel): unused.
            masks (dict[str, Tensor]): unused.

        Returns:
            float: seconds per frame.
        """
        return _rank0(lambda: self.whole_seconds(runnable(), batches))

    def whole_seconds(self, model: nn.Module, batches: Sequence[dict]) -> float:
        """Seconds per frame of the whole detector as it is (best of ``repeats``)."""
        batches = list(batches)[:self.frames]
        if self.whole_probe is not None:
            return float(self.whole_probe(model, batches))
        dev = next(model.parameters()).device
        with torch.no_grad():
            return sum(best_seconds(lambda b=b: model.test_step(b), self.repeats, dev)
                       for b in batches) / len(batches)

    def time_tables(self, model: nn.Module, batches: Sequence[dict],
                    flops: CostModel) -> Dict[str, LatencyTable]:
        """The latency table of every conv that ran on the first ``frames`` batches."""
        batches = list(batches)[:self.frames]
        convs = {n: st.module for n, st in flops.layers.items()
                 if not isinstance(st.module, nn.Linear)}
        inputs = {n: [] for n in convs}
        hooks = [m.register_forward_pre_hook(
            lambda mod, args, n=n: inputs[n].append(args[0])) for n, m in convs.items()]
        try:
            with torch.no_grad():  # one pass records every conv's inputs on the frames
                for b in batches:
                    model.test_step(b)
        finally:
            for h in hooks:
                h.remove()
        tables = {}
        for n, layer in convs.items():
            calls = inputs[n]
            if not calls:
                continue
            full_in, full_out = kept_widths(layer, None)
            cin, cout = _width_grid(full_in, self.widths), _width_grid(full_out, self.widths)
            secs = torch.zeros(len(cin), len(cout), dtype=torch.float64)
            for i, ci in enumerate(cin.tolist()):
                for j, co in enumerate(cout.tolist()):
                    secs[i, j] = self.probe(n, layer, calls, ci, co) if self.probe else \
                        time_conv(layer, calls, ci, co, self.repeats) / len(batches)
            tables[n] = LatencyTable(cin, cout, secs)
        return tables


def _rank0(fn: Callable[[], object]):
    """``fn()`` on rank 0, its result broadcast: every rank allocates with rank 0's timings
    (the same masks everywhere); the others do not time at all, so that they do not compete
    with rank 0 for the device."""
    rank, size = dist.get_dist_info()
    shared = [fn() if rank == 0 else None]
    if size > 1:
        dist.broadcast_object_list(shared, src=0)
    return shared[0]
