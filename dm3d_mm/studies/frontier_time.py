"""The wall-time axis of an ablation study: every evaluated cell of a detector (the model as
it was evaluated: fine-tuned, pruned or as trained, keep ratios in force) timed side by side
with the dense model, and the ratios kept in the work dir beside ``ablation.json``.

Weight pruning that removes no channel keeps the dense kernels: such a cell runs at the speed
of the model it was pruned from, and the timings show it."""
import os.path as osp
from collections import OrderedDict
from typing import Dict, List

from ..apis.config_utils import load_config
from ..apis.model import build_detector
from ..errors import UserError
from ..pruning.calib_frames import calibration_batches
from .ablation import Ablation
from .report import rows_of
from .results_file import ResultsFile, load_results
from .wall_time import measure

WALL_FILE = 'wall_time.json'  # in the ablation's work dir
PARTS = ('whole', '3D', '2D', 'head')


def time_cells(abl: Ablation, detector: str, frames: int = 8, repeats: int = 3,
               voxelizer: str = 'mmcv', device: str = 'cpu') -> Dict:
    """Time every result of ``detector`` side by side; the dense result is the reference.

    Args:
        abl (Ablation): the study (its results and cell files).
        detector (str): the detector's key.
        frames (int): val frames timed. Defaults to 8.
        repeats (int): timed passes (best of, per frame and part). Defaults to 3.
        voxelizer (str): see :func:`~dm3d_mm.studies.wall_time.measure`. Defaults to 'mmcv'.
        device (str): where the models run. Defaults to 'cpu'.

    Returns:
        dict: ``reference`` (the dense cell's name), ``frames``, ``repeats`` and ``times``
        (cell name -> seconds per frame of each part).
    """
    rows = sorted(rows_of(abl.results, detector), key=lambda r: -r['flops_ratio'])
    dense = next((r['name'] for r in rows if r['kind'] == 'dense'), None)
    if dense is None:
        raise UserError(f'{abl.path}: no dense result of {detector} to time against')
    models, batches = OrderedDict(), None
    for r in rows:
        config, ckpt = abl.model_files(r['name'])
        cfg = load_config(config, data_root=abl.data_root)
        if batches is None:
            batches = calibration_batches(cfg, frames, 'val')
        models[r['name']] = build_detector(cfg, ckpt, device).eval()
    times = measure(models, batches, repeats, voxelizer)
    return dict(reference=dense, frames=frames, repeats=repeats,
                times={n: dict(zip(PARTS, t)) for n, t in times.items()})


def write_wall_times(work_dir: str, detector: str, timed: Dict) -> str:
    """Keep ``timed`` (from :func:`time_cells`) as the detector's entry of the work dir's
    wall-time file (other detectors' entries kept); returns the file's path."""
    path = osp.join(work_dir, WALL_FILE)
    results = ResultsFile(path)  # locked, atomic, other detectors' entries merged in
    data = results.load()
    data[detector] = timed
    results.save(data)
    return path


def read_wall_times(work_dir: str) -> Dict[str, Dict[str, float]]:
    """detector -> cell name -> whole-detector wall time / dense, as measured in
    ``work_dir`` (empty when not measured).

    Args:
        work_dir (str): the ablation's work dir.
    """
    path = osp.join(work_dir, WALL_FILE)
    if not osp.isfile(path):
        return {}
    data = load_results(path)
    out = {}
    for det, d in data.items():
        ref = d['times'][d['reference']]['whole']
        out[det] = {n: t['whole'] / ref for n, t in d['times'].items()}
    return out


def ratio_rows(abl: Ablation, detector: str, timed: Dict) -> List[str]:
    """Markdown rows: per cell its FLOPs and its parts' wall times as ratios to dense."""
    ref = timed['times'][timed['reference']]
    lines = ['| cell | FLOPs / dense | whole / dense | 3D / dense | 2D / dense | head / dense '
             '| ms per frame |', '|---|---:|---:|---:|---:|---:|---:|']
    for r in sorted(rows_of(abl.results, detector), key=lambda r: -r['flops_ratio']):
        t = timed['times'][r['name']]
        lines.append(f"| {r['name']} | {r['flops_ratio']:.3f} | "
                     + ' | '.join(f'{t[p] / ref[p]:.3f}' for p in PARTS)
                     + f" | {t['whole'] * 1e3:.1f} |")
    return lines
