"""Wall time of a single-stage detector's parts, measured side by side (benchmarks), on the
CPU (``time.perf_counter``) or a GPU (CUDA events recorded at the part boundaries, read after
one synchronisation at the end of the forward)."""
import statistics
import time
from typing import Dict, List, Sequence

import torch
from mmdet3d.models.detectors import MVXTwoStageDetector

from ..apis.kitti_summary import CLASSES
from ..errors import UserError
from ..models.sort_voxelization import use_sort_voxelization

VOXELIZERS = ('mmcv', 'sort')


class PartClock:
    """Time marks at part boundaries on one device: ``time.perf_counter`` on the CPU; on a
    GPU, CUDA events on the current stream (no synchronisation between marks, so the parts
    run as they would untimed), read after one ``synchronize`` at the end.

    Args:
        cuda (bool): Whether the timed work runs on a GPU.
    """

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.marks = []
        if cuda:
            torch.cuda.synchronize()  # nothing queued from before counts

    def mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def seconds(self, a: int, b: int) -> float:
        """Seconds from mark ``a`` to mark ``b``."""
        if self.cuda:
            self.marks[b].synchronize()
            return self.marks[a].elapsed_time(self.marks[b]) / 1e3
        return self.marks[b] - self.marks[a]


def _is_cuda(model) -> bool:
    param = next(model.parameters(), None)
    return param is not None and param.is_cuda


def timed_forward(model, batch):
    """Seconds of (whole, 3D, 2D, head) for one batch of a VoxelNet-style detector (or the
    point branch of an MVX detector: CenterPoint), voxelization included in whole (and on a
    GPU the copy of the points to it)."""
    pre = 'pts_' if isinstance(model, MVXTwoStageDetector) else ''
    voxel_encoder, middle_encoder, backbone, neck, head = (getattr(model, pre + n) for n in (
        'voxel_encoder', 'middle_encoder', 'backbone', 'neck', 'bbox_head'))
    clock = PartClock(_is_cuda(model))
    clock.mark()
    data = model.data_preprocessor(batch, False)['inputs']
    vox = data['voxels']
    clock.mark()
    feats = voxel_encoder(vox['voxels'], vox['num_points'], vox['coors'])
    bev = middle_encoder(feats, vox['coors'], len(batch['inputs']['points']))
    clock.mark()
    x = neck(backbone(bev))
    clock.mark()
    head(x)
    clock.mark()
    return (clock.seconds(0, 4), clock.seconds(1, 2), clock.seconds(2, 3),
            clock.seconds(3, 4))


STATISTICS = dict(best=min, median=statistics.median)


def measure(models: Dict[str, torch.nn.Module], batches: Sequence[dict],
            repeats: int, voxelizer: str = 'mmcv', statistic: str = 'best',
            warmup: int = 1) -> Dict[str, List[float]]:
    """Mean seconds per batch of (whole, 3D, 2D, head) per model: per batch and part the
    best (or median) of ``repeats``, the models interleaved batch by batch so that they
    share the machine's state, after ``warmup`` untimed passes over the batches.

    Args:
        models (dict): name -> detector, each on the device it is timed on.
        batches (Sequence[dict]): collated batches (``pseudo_collate``).
        repeats (int): timed passes over the batches.
        voxelizer (str): ``'sort'`` first gives every model the grid-free
            :class:`~dm3d_mm.models.SortVoxelization` (the same voxels as mmcv's, see
            there); ``'mmcv'`` keeps the config's layer.
        statistic (str): ``'best'`` (CPU benches: the least disturbed run) or ``'median'``.
        warmup (int): untimed passes (CUDA: kernel selection, allocator warm-up).
    """
    if voxelizer not in VOXELIZERS:
        raise UserError(f'voxelizer {voxelizer!r}: use one of {VOXELIZERS}')
    if statistic not in STATISTICS:
        raise UserError(f'statistic {statistic!r}: use one of {sorted(STATISTICS)}')
    if voxelizer == 'sort':
        for m in models.values():
            use_sort_voxelization(m)
    # per batch and part the best (median) of the repeats, the models interleaved batch by
    # batch (a burst of load on the machine then hits every model alike), summed over batches
    runs = {n: [[] for _ in batches] for n in models}
    with torch.no_grad():
        for _ in range(warmup):
            for m in models.values():
                for b in batches:
                    timed_forward(m, b)
        for _ in range(repeats):
            for i, b in enumerate(batches):
                for name, m in models.items():
                    runs[name][i].append(timed_forward(m, b))
    reduce = STATISTICS[statistic]
    return {n: [sum(reduce(r[p] for r in per_batch) for per_batch in per)
                / len(batches) for p in range(4)] for n, per in runs.items()}


def ratio_table(rows: Dict[str, dict], times: Dict[str, List[float]], reference: str = 'dense',
                ms_of: str = 'whole') -> str:
    """Markdown: per variant AP (moderate, if measured), joint GMACs and the (whole, 3D, 2D,
    head) wall times as ratios to ``reference``; fills ``row['seconds']``."""
    parts = ('whole', '3D', '2D', 'head')
    lines = ['| variant | Car | Ped | Cyc | mAP | GMACs | FLOPs / dense | whole / dense | '
             f'3D / dense | 2D / dense | head / dense | {ms_of} ms per frame |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for name, row in rows.items():
        t = times[name]
        row.update(seconds=dict(zip(parts, t)))
        ap = row.get('ap', {})
        cells = [f"{ap.get(c, {}).get('moderate', float('nan')):.1f}"
                 for c in CLASSES]
        lines.append(f"| {name} | {' | '.join(cells)} | {row.get('mAP', float('nan')):.1f} | "
                     f"{row['gmacs']:.3f} | {row['gmacs'] / rows[reference]['gmacs']:.3f} | "
                     + ' | '.join(f'{a / b:.3f}' for a, b in zip(t, times[reference]))
                     + f' | {t[parts.index(ms_of)] * 1e3:.1f} |')
    return '\n'.join(lines)


def voxelizer_into_config(cfg, voxelizer: str):
    """``cfg`` with its detector built to voxelize by ``voxelizer`` (``'sort'``: the
    ``SortVoxelDataPreprocessor``, so that whatever builds a model from it, or from a config
    derived from it such as a slim export, times the same voxelization; ``'mmcv'``: as it
    is)."""
    if voxelizer not in VOXELIZERS:
        raise UserError(f'voxelizer {voxelizer!r}: use one of {VOXELIZERS}')
    pre = cfg.model.get('data_preprocessor') or {}
    if voxelizer == 'sort' and pre.get('type') == 'Det3DDataPreprocessor' and \
            pre.get('voxel_type', 'hard') == 'hard' and pre.get('voxel'):
        cfg.model.data_preprocessor['type'] = 'SortVoxelDataPreprocessor'
    return cfg


def add_bench_args(parser, out: str):
    """The arguments every weight-granularity bench shares (calibration and timed frames,
    repeats, data root, --no-ap, output dir)."""
    parser.add_argument('--calib-frames', type=int, default=16)
    parser.add_argument('--frames', type=int, default=8, help='val frames timed')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--data-root', default='data/synth_kitti')
    parser.add_argument('--no-ap', action='store_true', help='timings and FLOPs only')
    parser.add_argument('--voxelizer', choices=VOXELIZERS, default='mmcv',
                        help="hard voxelization of every timed model: mmcv's, or 'sort' "
                        '(the same voxels without the per-frame grid fill)')
    parser.add_argument('--out', default=out)
    return parser


def bench_setup(args, config: str, checkpoint: str):
    """(config, calibration batches, timed val batches, the dense model) of a bench run."""
    import os

    from ..apis.config_utils import load_config
    from ..apis.model import build_detector
    from ..pruning.calib_frames import calibration_batches
    os.makedirs(args.out, exist_ok=True)
    print(f'torch threads: {torch.get_num_threads()}')
    cfg = voxelizer_into_config(load_config(config, data_root=args.data_root), args.voxelizer)
    calib = calibration_batches(cfg, args.calib_frames, 'train')
    frames = calibration_batches(cfg, args.frames, 'val')
    return cfg, calib, frames, build_detector(cfg, checkpoint).eval()
