"""Calibration passes over the calibration frames.

One pass does the work of three: each frame's eval-mode forward is counted (joint FLOPs,
post spatial pruning), its outputs are kept as the dense reference y, and the same graph is
differentiated for the gradient rows of the distortion estimators. Afterwards only the
measured distortion of the pruned model (and, for the ``actual`` estimator, one run per
layer and ratio) goes over the frames again.
"""
import contextlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..cost import FlopsCounter, frames_in
from ..cost.layouts import mask_at
from ..errors import UserError
from ..progress import progress_bar
from .distributed import gather_rows, reduce_counter, sum_over_ranks
from .head_outputs import DEFAULT_LAMBDAS, weighted_distortion

Outputs = Callable[[nn.Module, dict], Tuple[Tensor, Tensor]]
GRADIENT_MODES = ('hutchinson', 'sum')


@dataclass
class CalibrationPass:
    """What one pass over the calibration frames gave.

    Args:
        counter (FlopsCounter | None): joint FLOPs of the frames (all ranks), if counted.
        reference (list): this rank's per-batch dense outputs (p_b, p_c), detached.
        grads (dict): per layer, gradient rows (M, D) of all ranks in frame order (only the
            first frame's rows when no gradient mode was asked).
        reached (list): layers whose weights are in the autograd graph of the measured
            outputs (lambda-weighted terms with a zero lambda are not measured). A layer
            whose gradient is zero on these frames (a ReLU-dead branch) still reaches them.
    """
    counter: Optional[FlopsCounter]
    reference: List[Tuple[Tensor, Tensor]]
    grads: Dict[str, Tensor]
    reached: List[str]


def calibration_pass(model: nn.Module, layers: Dict[str, nn.Module], batches: Sequence[dict],
                     outputs: Outputs, lambdas=DEFAULT_LAMBDAS,
                     mode: Optional[str] = 'hutchinson', num_projections: int = 2,
                     seed: int = 0, progress: bool = True, count: bool = True,
                     frame_ids: Optional[Sequence[int]] = None) -> CalibrationPass:
    """Count, keep reference outputs and collect gradient rows in one pass per frame.

    ``hutchinson``: z = sqrt(lb) u_b.p_b + sqrt(lc) u_c.p_c with Rademacher u, so that
    E[g g^T] = lb J_b^T J_b + lc J_c^T J_c (the Fisher of the weighted vector output).
    ``sum``: z = lb sum(p_b) + lc sum(p_c), the output gradient the paper averages (Alg. 2).
    ``None``: no gradient rows except one Hutchinson row of the first frame.
    Calibration batches must hold one frame each (per-frame gradients). The projections of
    frame i are drawn from a generator seeded by (seed, i), and under a distributed launcher
    the rows of all ranks are gathered in frame order (``frame_ids``: this rank's global
    frame indices), so any number of ranks gives one process's result.
    """
    if mode is not None and mode not in GRADIENT_MODES:
        raise ValueError(f'unknown gradient mode {mode!r}; choose from {GRADIENT_MODES}')
    reps = num_projections if mode == 'hutchinson' else 1
    names = list(layers)
    weights = [layers[n].weight for n in names]
    rows: Dict[str, List[Tensor]] = {n: [] for n in names}
    frame_ids = list(range(len(batches))) if frame_ids is None else list(frame_ids)
    sb, sc = float(lambdas[0]) ** 0.5, float(lambdas[1]) ** 0.5
    reference = []
    reached: set = set()
    bar = progress_bar(len(batches), progress)
    was_training = model.training
    model.eval()
    counter = FlopsCounter(model) if count else None
    try:
        with counter if count else contextlib.nullcontext():
            for i, (fid, batch) in enumerate(zip(frame_ids, batches)):
                if frames_in(batch) != 1:
                    raise UserError('calibration batches must hold exactly one frame each')
                differentiate = mode is not None or i == 0
                with torch.set_grad_enabled(differentiate):
                    p_b, p_c = outputs(model, batch)
                reference.append((p_b.detach(), p_c.detach()))
                if count:
                    counter.add_frames(1)
                if differentiate:
                    reached |= _gradient_rows(p_b, p_c, weights, names, rows,
                                              mode or 'hutchinson', reps if mode else 1, sb,
                                              sc, lambdas, seed, fid)
                if bar:
                    bar.update()
    finally:
        model.train(was_training)
    if count:
        reduce_counter(counter)  # all ranks' frames under a distributed launcher
    stacked = {n: torch.stack(v) for n, v in rows.items()}
    if mode is not None:
        stacked = gather_rows(stacked, frame_ids, reps)
    # a layer reaches the outputs if it does on any rank
    hits = sum_over_ranks(*[float(n in reached) for n in names])
    return CalibrationPass(counter, reference, stacked,
                           [n for n, h in zip(names, hits) if h > 0])


def _gradient_rows(p_b, p_c, weights, names, rows, mode, reps, sb, sc, lambdas, seed,
                   fid) -> set:
    """Append this frame's gradient rows; return the layers in the outputs' graph."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + fid)
    reached = set()
    for r in range(reps):
        ub = torch.randint(0, 2, p_b.shape, generator=gen).to(p_b) * 2 - 1
        uc = torch.randint(0, 2, p_c.shape, generator=gen).to(p_c) * 2 - 1
        terms = []  # a zero lambda leaves its outputs out of the graph (not measured)
        if sb > 0:
            terms.append(sb * (ub * p_b).sum() if mode == 'hutchinson' else
                         lambdas[0] * p_b.sum())
        if sc > 0:
            terms.append(sc * (uc * p_c).sum() if mode == 'hutchinson' else
                         lambdas[1] * p_c.sum())
        z = sum(terms)
        grads = torch.autograd.grad(z, weights, retain_graph=r < reps - 1, allow_unused=True)
        for n, g, w in zip(names, grads, weights):
            if g is None:
                g = torch.zeros_like(w)
            else:
                reached.add(n)
            rows[n].append(g.detach().reshape(-1).float().cpu())
    return reached


def collect_gradients(model: nn.Module, layers: Dict[str, nn.Module], batches: Sequence[dict],
                      outputs: Outputs, lambdas=DEFAULT_LAMBDAS, mode: str = 'hutchinson',
                      num_projections: int = 2, seed: int = 0, progress: bool = True,
                      frame_ids: Optional[Sequence[int]] = None) -> Dict[str, Tensor]:
    """Gradient rows (M, D) per layer alone (no FLOPs count): see :func:`calibration_pass`."""
    return calibration_pass(model, layers, batches, outputs, lambdas, mode, num_projections,
                            seed, progress, count=False, frame_ids=frame_ids).grads


@torch.no_grad()
def reference_outputs(model: nn.Module, batches: Sequence[dict],
                      outputs: Outputs) -> List[Tuple[Tensor, Tensor]]:
    """Per-batch (p_b, p_c) of the model as it is now."""
    return [outputs(model, b) for b in batches]


@torch.no_grad()
def measured_distortion(model: nn.Module, batches: Sequence[dict],
                        ref: List[Tuple[Tensor, Tensor]], outputs: Outputs,
                        lambdas=DEFAULT_LAMBDAS) -> float:
    """Mean per-frame weighted output distortion of the model as it is now."""
    total, frames = 0.0, 0
    for batch, r in zip(batches, ref):
        new = outputs(model, batch)
        total += float(weighted_distortion(r, new, lambdas).sum())
        frames += frames_in(batch)
    total, frames = sum_over_ranks(total, frames)  # all ranks' frames
    return total / max(frames, 1)


@torch.no_grad()
def counted_distortion(model: nn.Module, batches: Sequence[dict],
                       ref: List[Tuple[Tensor, Tensor]], outputs: Outputs,
                       lambdas=DEFAULT_LAMBDAS) -> Tuple[FlopsCounter, float]:
    """(the joint FLOPs of the model as it is now over ``batches``, all ranks; its measured
    distortion against ``ref``), from one pass over the frames."""
    with FlopsCounter(model) as counter:
        measured = measured_distortion(model, batches, ref, outputs, lambdas)
        counter.add_frames(sum(frames_in(b) for b in batches))
    reduce_counter(counter)
    return counter, measured


@torch.no_grad()
def actual_distortion_curves(model: nn.Module, layers: Dict[str, nn.Module],
                             batches: Sequence[dict], ref, orders: Dict[str, Tensor],
                             counts: Dict[str, Tensor], outputs: Outputs,
                             lambdas=DEFAULT_LAMBDAS,
                             progress: bool = True) -> Dict[str, Tensor]:
    """The paper's 'actual distortion' (Tab. 5): prune one layer alone to each candidate
    ratio, run the calibration frames, measure the output distortion."""
    out = {}
    bar = progress_bar(sum(len(c) - 1 for c in counts.values()), progress)
    for name, module in layers.items():
        w0 = module.weight.detach().clone()
        curve = torch.zeros(len(counts[name]), dtype=torch.float64)
        for k in range(1, len(counts[name])):
            module.weight.copy_(w0 * mask_at(w0, orders[name], int(counts[name][k])))
            curve[k] = measured_distortion(model, batches, ref, outputs, lambdas)
            if bar:
                bar.update()
        module.weight.copy_(w0)
        out[name] = curve
    return out
