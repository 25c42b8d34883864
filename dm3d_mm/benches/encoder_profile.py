"""Where a sparse 3D encoder's CPU time goes: spconv's rulebook generation, the GEMMs that
weight and channel pruning shrink, the per-offset gathers and scatters, and the rest (Python
per kernel offset, norms, the importance predictor, the BEV scatter), per frame.

The encoder of a demo detector runs on val frames (voxels and VFE features made once, then
the encoder alone, --repeats passes after one warm-up) under Python's profiler; spconv's
native calls and torch's GEMM are summed by name. --keep sets Ada3D keep ratios first
(``location=keep`` pairs, e.g. ``input=0.5``).

Example: python tools/bench.py encoder_profile \
    --config configs/demo/second_synth-kitti_cpu_ada3d.py \
    --checkpoint checkpoints/second_synth-kitti_cpu_ada3d.pth --keep input=0.5
"""
import cProfile
import pstats
import time

import torch

from ..apis import load_config
from ..apis.cli import keep_ratios_of
from ..apis.model import build_detector
from ..errors import UserError
from ..joint.sites import find_sites, set_keep_ratios
from ..pruning.calib_frames import calibration_batches
from ..registry import BENCHES
from .base import Bench
from .helpers import encoder_inputs

# (row, what the profiler's function names contain)
GROUPS = (('rulebooks (spconv get_indice_pairs)', ('sparse.all.get_indice_pairs', )),
          ('GEMMs (torch.mm)', ('built-in method torch.mm>', )),
          ('gathers + scatters (spconv)', ('gather_cpu', 'scatter_add_cpu')))



@BENCHES.register_module(name='encoder_profile')
class EncoderProfileBench(Bench):
    """Where a sparse 3D encoder's CPU time goes: rulebooks, GEMMs, gathers."""

    def add_arguments(self, p) -> None:
        p.add_argument('--config', default='configs/demo/second_synth-kitti_cpu_ada3d.py')
        p.add_argument('--checkpoint', default='checkpoints/second_synth-kitti_cpu_ada3d.pth')
        p.add_argument('--keep', nargs='*', default=[], metavar='LOC=KEEP',
                       help='Ada3D keep ratios set first, e.g. input=0.5')
        p.add_argument('--frames', type=int, default=8)
        p.add_argument('--repeats', type=int, default=3)
        p.add_argument('--data-root', default='data/synth_kitti')

    def run(self, args) -> None:
        cfg = load_config(args.config, data_root=args.data_root)
        model = build_detector(cfg, args.checkpoint).eval()
        encoder, inputs = encoder_inputs(model, calibration_batches(cfg, args.frames, 'val'))
        prefix = [n for n, m in model.named_modules() if m is encoder][0]
        try:
            ratios = keep_ratios_of(args.keep, prefix)
        except ValueError as e:
            raise UserError(f'--keep: {e}')
        if ratios:
            set_keep_ratios(find_sites(model, names=list(ratios)), ratios)
        runs = args.repeats * len(inputs)
        with torch.no_grad():
            for x in inputs:  # warm-up
                encoder(*x)
            profiler = cProfile.Profile()
            t0 = time.perf_counter()
            profiler.enable()
            for _ in range(args.repeats):
                for x in inputs:
                    encoder(*x)
            profiler.disable()
            total = (time.perf_counter() - t0) / runs
        stats = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, nc, tottime, cumtime, ..)
        print(f'{args.config}, keep ratios {ratios or "as trained"}, {len(inputs)} val frames, '
              f'torch threads {torch.get_num_threads()} (times under the profiler)')
        print('| part | ms per frame | share | calls per frame |\n|---|---:|---:|---:|')
        rest = total
        for row, names in GROUPS:
            hits = [v for k, v in stats.items() if any(n in k[2] for n in names)]
            seconds = sum(v[2] for v in hits) / runs
            calls = sum(v[1] for v in hits) / runs
            rest -= seconds
            print(f'| {row} | {seconds * 1e3:.1f} | {seconds / total:.2f} | {calls:.0f} |')
        print(f'| the rest | {rest * 1e3:.1f} | {rest / total:.2f} | |')
        print(f'| encoder | {total * 1e3:.1f} | 1.00 | |')
