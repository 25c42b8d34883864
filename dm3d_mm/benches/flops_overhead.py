"""Overhead of joint-FLOPs counting: forward with the counter vs a plain forward.

Runs the demo SECOND detector on the same val frames, alternating plain and counted passes
so both see the same machine state, and prints a table of seconds per frame and the ratio.
Example: python tools/bench.py flops_overhead --frames 10 --repeats 3
"""
import time

import torch

from ..apis import load_config
from ..apis.flops import single_frame_loader
from ..apis.model import build_detector
from ..cost import FlopsCounter
from ..registry import BENCHES
from .base import Bench


@BENCHES.register_module(name='flops_overhead')
class FlopsOverheadBench(Bench):
    """Overhead of joint-FLOPs counting: a counted forward against a plain one."""

    def add_arguments(self, p) -> None:
        p.add_argument('--config', default='configs/demo/second_synth-kitti_cpu.py')
        p.add_argument('--checkpoint', default='checkpoints/second_synth-kitti_cpu.pth')
        p.add_argument('--data-root', default='data/synth_kitti')
        p.add_argument('--frames', type=int, default=10)
        p.add_argument('--repeats', type=int, default=3)

    def run(self, args) -> None:
        cfg = load_config(args.config, data_root=args.data_root)
        model = build_detector(cfg, args.checkpoint)
        loader = single_frame_loader(cfg)
        batches = [b for _, b in zip(range(args.frames), loader)]
        times = {'plain': [], 'counted': []}
        with torch.no_grad():
            model.test_step(batches[0])  # warm-up
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                for b in batches:
                    model.test_step(b)
                times['plain'].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                with FlopsCounter(model) as counter:
                    for b in batches:
                        model.test_step(b)
                        counter.add_frames(1)
                times['counted'].append(time.perf_counter() - t0)
        plain = min(times['plain']) / len(batches)
        counted = min(times['counted']) / len(batches)
        print(f'| forward ({len(batches)} frames, best of {args.repeats}) | s/frame | ratio |')
        print('|---|---:|---:|')
        print(f'| plain | {plain:.4f} | 1.00 |')
        print(f'| with FlopsCounter | {counted:.4f} | {counted / plain:.2f} |')
