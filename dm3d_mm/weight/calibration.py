"""Calibration passes: reference outputs, per-frame gradient rows, measured distortion."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.utils import ProgressBar
from torch import Tensor, nn

from .curves import mask_at
from .distributed import gather_rows, sum_over_ranks
from .head_outputs import DEFAULT_LAMBDAS, forward_outputs, weighted_distortion


def _frames(batch: dict) -> int:
    return len(batch['data_samples'])


@torch.no_grad()
def count_flops(model: nn.Module, batches: Sequence[dict]):
    """A FlopsCounter over a tensor-mode eval forward of each batch (train mode restored)."""
    from ..flops import FlopsCounter
    was_training = model.training
    model.eval()
    with FlopsCounter(model) as counter:
        for b in batches:
            forward_outputs(model, b)
            counter.add_frames(_frames(b))
    model.train(was_training)
    return counter


@torch.no_grad()
def reference_outputs(model: nn.Module, batches: Sequence[dict],
                      box_weighting: str = 'confidence') -> List[Tuple[Tensor, Tensor]]:
    return [forward_outputs(model, b, box_weighting) for b in batches]


def collect_gradients(model: nn.Module, layers: Dict[str, nn.Module], batches: Sequence[dict],
                      lambdas=DEFAULT_LAMBDAS, mode: str = 'hutchinson', num_projections: int = 2,
                      seed: int = 0, progress: bool = True,
                      box_weighting: str = 'confidence',
                      frame_ids: Optional[Sequence[int]] = None) -> Dict[str, Tensor]:
    """Gradient rows (M, D) per layer of one scalar per frame and projection.

    ``hutchinson``: z = sqrt(lb) u_b.p_b + sqrt(lc) u_c.p_c with Rademacher u, so that
    E[g g^T] = lb J_b^T J_b + lc J_c^T J_c (the Fisher of the weighted vector output).
    ``sum``: z = lb sum(p_b) + lc sum(p_c), the output gradient the paper averages (Alg. 2).
    Calibration batches must hold one frame each (per-frame gradients). The projections of
    frame i are drawn from a generator seeded by (seed, i), and under a distributed launcher
    the rows of all ranks are gathered in frame order (``frame_ids``: this rank's global
    frame indices), so any number of ranks gives one process's result.
    """
    if mode not in ('hutchinson', 'sum'):
        raise ValueError(f'unknown gradient mode {mode!r}')
    reps = num_projections if mode == 'hutchinson' else 1
    names = list(layers)
    weights = [layers[n].weight for n in names]
    rows: Dict[str, List[Tensor]] = {n: [] for n in names}
    frame_ids = list(range(len(batches))) if frame_ids is None else list(frame_ids)
    sb, sc = float(lambdas[0]) ** 0.5, float(lambdas[1]) ** 0.5
    bar = ProgressBar(len(batches) * reps) if progress else None
    for fid, batch in zip(frame_ids, batches):
        if _frames(batch) != 1:
            raise ValueError('calibration batches must hold exactly one frame each')
        gen = torch.Generator().manual_seed(seed * 1_000_003 + fid)
        p_b, p_c = forward_outputs(model, batch, box_weighting)
        for r in range(reps):
            if mode == 'hutchinson':
                ub = torch.randint(0, 2, p_b.shape, generator=gen).to(p_b) * 2 - 1
                uc = torch.randint(0, 2, p_c.shape, generator=gen).to(p_c) * 2 - 1
                z = sb * (ub * p_b).sum() + sc * (uc * p_c).sum()
            else:
                z = lambdas[0] * p_b.sum() + lambdas[1] * p_c.sum()
            grads = torch.autograd.grad(z, weights, retain_graph=r < reps - 1,
                                        allow_unused=True)
            for n, g, w in zip(names, grads, weights):
                g = torch.zeros_like(w) if g is None else g
                rows[n].append(g.detach().reshape(-1).float().cpu())
            if bar:
                bar.update()
    return gather_rows({n: torch.stack(v) for n, v in rows.items()}, frame_ids, reps)


@torch.no_grad()
def measured_distortion(model: nn.Module, batches: Sequence[dict],
                        ref: List[Tuple[Tensor, Tensor]], lambdas=DEFAULT_LAMBDAS,
                        box_weighting: str = 'confidence') -> float:
    """Mean per-frame weighted output distortion of the model as it is now."""
    total, frames = 0.0, 0
    for batch, r in zip(batches, ref):
        new = forward_outputs(model, batch, box_weighting)
        total += float(weighted_distortion(r, new, lambdas).sum())
        frames += _frames(batch)
    total, frames = sum_over_ranks(total, frames)  # all ranks' frames
    return total / max(frames, 1)


@torch.no_grad()
def actual_distortion_curves(model: nn.Module, layers: Dict[str, nn.Module],
                             batches: Sequence[dict], ref, orders: Dict[str, Tensor],
                             counts: Dict[str, Tensor], lambdas=DEFAULT_LAMBDAS,
                             progress: bool = True,
                             box_weighting: str = 'confidence') -> Dict[str, Tensor]:
    """The paper's 'actual distortion' (Tab. 5): prune one layer alone to each candidate
    ratio, run the calibration frames, measure the output distortion."""
    out = {}
    bar = ProgressBar(sum(len(c) - 1 for c in counts.values())) if progress else None
    for name, module in layers.items():
        w0 = module.weight.detach().clone()
        curve = torch.zeros(len(counts[name]), dtype=torch.float64)
        for k in range(1, len(counts[name])):
            module.weight.copy_(w0 * mask_at(w0, orders[name], int(counts[name][k])))
            curve[k] = measured_distortion(model, batches, ref, lambdas, box_weighting)
            if bar:
                bar.update()
        module.weight.copy_(w0)
        out[name] = curve
    return out
