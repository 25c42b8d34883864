"""Wall time of a single-stage detector's parts, measured side by side (benchmarks)."""
import time
from typing import Dict, List, Sequence

import torch
from mmdet3d.models.detectors import MVXTwoStageDetector

from ..models.sort_voxelization import use_sort_voxelization

VOXELIZERS = ('mmcv', 'sort')


def timed_forward(model, batch):
    """Seconds of (whole, 3D, 2D, head) for one batch of a VoxelNet-style detector (or the
    point branch of an MVX detector: CenterPoint), voxelization included in whole."""
    pre = 'pts_' if isinstance(model, MVXTwoStageDetector) else ''
    voxel_encoder, middle_encoder, backbone, neck, head = (getattr(model, pre + n) for n in (
        'voxel_encoder', 'middle_encoder', 'backbone', 'neck', 'bbox_head'))
    t0 = time.perf_counter()
    data = model.data_preprocessor(batch, False)['inputs']
    vox = data['voxels']
    t1 = time.perf_counter()
    feats = voxel_encoder(vox['voxels'], vox['num_points'], vox['coors'])
    bev = middle_encoder(feats, vox['coors'], len(batch['inputs']['points']))
    t2 = time.perf_counter()
    x = neck(backbone(bev))
    t3 = time.perf_counter()
    head(x)
    t4 = time.perf_counter()
    return t4 - t0, t2 - t1, t3 - t2, t4 - t3


def measure(models: Dict[str, torch.nn.Module], batches: Sequence[dict],
            repeats: int, voxelizer: str = 'mmcv') -> Dict[str, List[float]]:
    """Mean seconds per frame of (whole, 3D, 2D, head) per model: per frame and part the
    best of ``repeats``, the models interleaved frame by frame so that they share the
    machine's state.
    ``voxelizer='sort'`` first gives every model the grid-free
    :class:`~dm3d_mm.models.SortVoxelization` (the same voxels as mmcv's, see there)."""
    if voxelizer not in VOXELIZERS:
        raise ValueError(f'voxelizer {voxelizer!r}: use one of {VOXELIZERS}')
    if voxelizer == 'sort':
        for m in models.values():
            use_sort_voxelization(m)
    # per frame and part the best of the repeats, the models interleaved frame by frame
    # (a burst of load on the machine then hits every model alike), summed over the frames
    best = {n: [[float('inf')] * 4 for _ in batches] for n in models}
    with torch.no_grad():
        for m in models.values():
            timed_forward(m, batches[0])  # warm-up
        for _ in range(repeats):
            for i, b in enumerate(batches):
                for name, m in models.items():
                    best[name][i] = [min(a, v) for a, v in
                                     zip(best[name][i], timed_forward(m, b))]
    return {n: [sum(f[p] for f in per_frame) / len(batches) for p in range(4)]
            for n, per_frame in best.items()}


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
                 for c in ('Car', 'Pedestrian', 'Cyclist')]
        lines.append(f"| {name} | {' | '.join(cells)} | {row.get('mAP', float('nan')):.1f} | "
                     f"{row['gmacs']:.3f} | {row['gmacs'] / rows[reference]['gmacs']:.3f} | "
                     + ' | '.join(f'{a / b:.3f}' for a, b in zip(t, times[reference]))
                     + f' | {t[parts.index(ms_of)] * 1e3:.1f} |')
    return '\n'.join(lines)


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

    from .config_utils import load_config
    from .flops import build_detector
    from ..weight.calib_frames import calibration_batches
    os.makedirs(args.out, exist_ok=True)
    print(f'torch threads: {torch.get_num_threads()}')
    cfg = load_config(config, data_root=args.data_root)
    calib = calibration_batches(cfg, args.calib_frames, 'train')
    frames = calibration_batches(cfg, args.frames, 'val')
    return cfg, calib, frames, build_detector(cfg, checkpoint).eval()
