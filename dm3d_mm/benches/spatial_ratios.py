"""Whole-detector wall time of the shipped spatial demo models as ratios to their dense demo
model, measured side by side (``studies.wall_time.measure``: the models interleaved batch by
batch on the same val frames, best of ``--repeats`` per frame and part), in ``--rounds``
independent rounds; the table gives each round's whole-detector ratio and the median of the
rounds' ratios per part. Run it on two commits to compare them (no AP is measured).

Example:
  python tools/bench.py spatial_ratios --frames 8 --repeats 5 --rounds 3
"""
import statistics

import torch

from ..apis import load_config
from ..apis.model import build_detector
from ..pruning.calib_frames import calibration_batches
from ..registry import BENCHES
from ..studies.wall_time import measure
from .base import Bench
from .host_syncs import MODELS

PARTS = ('whole', '3D', '2D', 'head')


@BENCHES.register_module(name='spatial_ratios')
class SpatialRatiosBench(Bench):
    """Whole-detector time of the shipped spatial demo models as ratios to dense."""

    def add_arguments(self, p) -> None:
        p.add_argument('--frames', type=int, default=8, help='val frames timed')
        p.add_argument('--repeats', type=int, default=5, help='timed passes per round')
        p.add_argument('--rounds', type=int, default=3, help='independent rounds')
        p.add_argument('--data-root', default='data/synth_kitti/')
        p.add_argument('--models', nargs='+', choices=list(MODELS), default=list(MODELS),
                       help='rows (each detector family with its dense row)')

    def run(self, args) -> None:
        print('| demo model | whole ms / frame | whole / dense per round | whole / dense '
              '(median) | 3D / dense | 2D / dense | head / dense |')
        print('|---|---:|---|---:|---:|---:|---:|')
        families = dict.fromkeys(row.split()[0] for row in args.models)
        for family in families:
            rows = [f'{family} dense'] + [r for r in args.models
                                          if r.startswith(family) and r != f'{family} dense']
            models, batches = {}, None
            for row in rows:
                config, ckpt = MODELS[row]
                cfg = load_config(f'configs/demo/{config}.py', data_root=args.data_root)
                models[row] = build_detector(cfg, f'checkpoints/{ckpt}.pth').eval()
                batches = batches or calibration_batches(cfg, args.frames, 'val')
            rounds = []
            with torch.no_grad():
                for _ in range(args.rounds):
                    rounds.append(measure(models, batches, args.repeats))
            dense = rows[0]
            for row in rows:
                ratios = [[t[row][p] / t[dense][p] for p in range(len(PARTS))] for t in rounds]
                whole_ms = statistics.median(t[row][0] for t in rounds) * 1e3
                median = [statistics.median(r[p] for r in ratios) for p in range(len(PARTS))]
                print(f"| {row} | {whole_ms:.1f} | {' '.join(f'{r[0]:.3f}' for r in ratios)} | "
                      + ' | '.join(f'{m:.3f}' for m in median) + ' |', flush=True)
