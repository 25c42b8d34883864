"""Calibration under mmengine's distributed launcher: every rank takes its share of the
calibration frames, and the statistics the allocation needs (pair counts, per-frame gradient
rows, distortion sums) are reduced so that all ranks reach the same masks as one process."""
from typing import Dict, List, Sequence, Tuple

import torch
from mmengine import dist

from ..errors import UserError


def world() -> Tuple[int, int]:
    """(rank, world size); (0, 1) when not distributed."""
    if not dist.is_distributed():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def shard(batches: Sequence[dict]) -> Tuple[List[dict], List[int]]:
    """This rank's calibration frames and their global indices (frame i -> rank i % W)."""
    rank, size = world()
    if len(batches) < size:
        raise UserError(f'{len(batches)} calibration frames for {size} ranks: every rank '
                         'needs at least one frame')
    ids = list(range(rank, len(batches), size))
    return [batches[i] for i in ids], ids


def reduce_counter(counter) -> None:
    """Sum a FlopsCounter's pairs, sites, bias/aux flops and frames over ranks (in place)."""
    if world()[1] == 1:
        return
    names = sorted(counter.layers)
    all_names = dist.all_gather_object(names)
    if any(n != names for n in all_names):
        raise RuntimeError('ranks ran different layers in the FLOPs count')
    for n in names:
        st = counter.layers[n]
        vec = torch.cat([st.pairs, torch.tensor([st.calls, st.sites_in, st.sites_out,
                                                 st.bias_flops])])
        dist.all_reduce(vec)
        st.pairs = vec[:-4].clone()
        st.calls, st.sites_in, st.sites_out, st.bias_flops = (int(v) for v in vec[-4:])
    aux = sorted(counter.aux)
    vec = torch.tensor([counter.aux[n].flops for n in aux] + [counter.frames],
                       dtype=torch.long)
    dist.all_reduce(vec)
    for n, v in zip(aux, vec[:-1].tolist()):
        counter.aux[n].flops = v
    counter.frames = int(vec[-1])


def gather_rows(rows: Dict[str, torch.Tensor], frame_ids: Sequence[int],
                per_frame: int) -> Dict[str, torch.Tensor]:
    """All ranks' gradient rows, ordered by global frame index as one process orders them."""
    if world()[1] == 1:
        return rows
    parts = dist.all_gather_object((list(frame_ids), rows))
    order = sorted((fid, r, i) for r, (fids, _) in enumerate(parts) for i, fid in enumerate(fids))
    out = {}
    for name in rows:
        chunks = [parts[r][1][name][i * per_frame:(i + 1) * per_frame] for _, r, i in order]
        out[name] = torch.cat(chunks)
    return out


def sum_over_ranks(*values: float) -> List[float]:
    """Element-wise sum of a few floats over ranks (float64)."""
    vec = torch.tensor(values, dtype=torch.float64)
    if world()[1] > 1:
        dist.all_reduce(vec)
    return vec.tolist()
