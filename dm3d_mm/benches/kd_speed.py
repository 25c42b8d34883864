"""Training cost of distillation: one iteration (``train_step``: forward, backward, AdamW step)
of a student with the frozen teacher's forward and the distillation losses, as a ratio to the
same student's plain iteration, both timed interleaved in one run on the same batches.

Example (the pruned sparse-head Ada3D CenterPoint's KD config, the dense CenterPoint teacher):
  python tools/bench.py kd_speed \
      configs/distill/centerpoint_synth-kitti_cpu_ada3d_sparse-head_dm3d50_kd.py \
      --checkpoint checkpoints/centerpoint_synth-kitti_cpu_ada3d.pth --iters 6
"""
import statistics
import time

import torch
from mmengine.optim import OptimWrapper

from ..apis import load_config
from ..hooks import DistillationHook
from ..registry import BENCHES
from .base import Bench


@BENCHES.register_module(name='kd_speed')
class KdSpeedBench(Bench):
    """One distillation iteration as a ratio to a plain fine-tune iteration."""

    def add_arguments(self, p) -> None:
        p.add_argument('config', help='a config with a distill section (the student and teacher)')
        p.add_argument('--checkpoint', required=True, help="the student's weights")
        p.add_argument('--data-root', default='data/synth_kitti/')
        p.add_argument('--batch-size', type=int, default=2)
        p.add_argument('--iters', type=int, default=6, help='timed iterations of each (median)')
        p.add_argument('--warmup', type=int, default=1)

    def run(self, args) -> None:
        cfg = load_config(args.config, data_root=args.data_root)
        cfg.train_dataloader.batch_size = args.batch_size
        cfg.train_dataloader.num_workers = 0
        cfg.train_dataloader.persistent_workers = False
        from mmengine.registry import init_default_scope
        from mmengine.runner import Runner
        init_default_scope(cfg.get('default_scope', 'mmdet3d'))
        loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
        batches = []
        for batch in loader:
            batches.append(batch)
            if len(batches) == args.warmup + args.iters:
                break
        # built with its train_cfg (the tools' build_detector builds for inference)
        from mmdet3d.registry import MODELS
        from mmengine.runner import load_checkpoint
        model = MODELS.build(cfg.model)
        load_checkpoint(model, args.checkpoint, map_location='cpu', logger='silent')
        model.train()
        optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-5))
        hook = DistillationHook()
        times = {'plain': [], 'kd': []}
        hook.attach(model, cfg)  # the teacher is built (and loaded) once, outside the timing
        for i, batch in enumerate(batches):
            for kind in ('plain', 'kd'):  # interleaved: both see the same machine state
                if kind == 'kd':
                    hook.attach(model, cfg)
                t0 = time.perf_counter()
                model.train_step(batch, optim)
                if kind == 'kd':
                    hook.after_train_iter(None, i)  # the adapters' step, where there are any
                seconds = time.perf_counter() - t0
                hook.detach()
                if i >= args.warmup:
                    times[kind].append(seconds)
        plain, kd = (statistics.median(times[k]) for k in ('plain', 'kd'))
        print('| student | plain iteration (s) | KD iteration (s) | KD / plain |\n'
              '|---|---:|---:|---:|\n'
              f'| {args.config} | {plain:.2f} | {kd:.2f} | {kd / plain:.2f} |')
        print(f'median of {args.iters} iterations each, batch {args.batch_size}, '
              f'{torch.get_num_threads()} threads; KD terms of the last: {hook.last}')
