"""DM3D against the baselines at equal joint FLOPs, before any fine-tuning.

For each FLOPs budget and method: prune the demo detector, measure the weighted output
distortion on held-out val frames and the KITTI AP (val split); then the per-layer rank
correlation of predicted (fisher, taylor2) against actual distortion curves (Tab. 5), and
the wall time of allocation split into gradients / curves / DP against the 'actual'
estimator. Prints markdown tables; writes bench_prune.json.

Example: python tools/bench.py prune_compare --budgets 0.5 0.33 0.25 --calib-frames 16
"""
import copy
import json
import os
import os.path as osp
import tempfile
import time

import numpy as np
import torch

from ..apis import load_config
from ..apis.demo import evaluate_checkpoint
from ..apis.kitti_summary import moderate_map, summarize_kitti_metrics
from ..apis.model import build_detector
from ..apis.prune import calibration_batches
from ..pruning import DM3DPruner
from ..registry import BENCHES
from ..weight.calibration import collect_gradients, measured_distortion, reference_outputs
from ..weight.discovery import find_prunable_layers
from ..weight.head_outputs import build_head_outputs
from .base import Bench
from .helpers import spearman

METHODS = ['dm3d', 'uniform', 'global_magnitude', 'lamp', 'erk']



def car_mod(ap):
    return ap.get('Car', {}).get('moderate')



@BENCHES.register_module(name='prune_compare')
class PruneCompareBench(Bench):
    """DM3D against the baselines at equal joint FLOPs, before fine-tuning."""

    def add_arguments(self, p) -> None:
        p.add_argument('--config', default='configs/demo/second_synth-kitti_cpu.py')
        p.add_argument('--checkpoint', default='checkpoints/second_synth-kitti_cpu.pth')
        p.add_argument('--data-root', default='data/synth_kitti')
        p.add_argument('--budgets', type=float, nargs='+', default=[0.5, 0.33, 0.25])
        p.add_argument('--methods', nargs='+', default=METHODS)
        p.add_argument('--calib-frames', type=int, default=16)
        p.add_argument('--heldout-frames', type=int, default=8)
        p.add_argument('--num-ratios', type=int, default=16)
        p.add_argument('--corr-ratios', type=int, default=8,
                       help='candidate ratios for the fisher/taylor2/actual comparison (actual '
                            'runs the calibration set once per layer and ratio)')
        p.add_argument('--no-ap', action='store_true', help='skip KITTI AP (distortion only)')
        p.add_argument('--out', default='work_dirs/bench_prune')

    def run(self, args) -> None:
        os.makedirs(args.out, exist_ok=True)
        cfg = load_config(args.config, data_root=args.data_root)
        dense = build_detector(cfg, args.checkpoint)
        calib = calibration_batches(cfg, args.calib_frames, 'train')
        heldout = calibration_batches(cfg, args.heldout_frames, 'val')
        outputs = build_head_outputs(dense)
        ref = reference_outputs(dense, heldout, outputs)
        rows = []
        dense_ap = None if args.no_ap else summarize_kitti_metrics(evaluate_checkpoint(
            args.config, args.checkpoint, args.data_root, osp.join(args.out, 'dense')))
        for budget in args.budgets:
            for method in args.methods:
                model = copy.deepcopy(dense)
                res = DM3DPruner(budget, method=method, num_ratios=args.num_ratios,
                                 progress=False).prune(model, calib)
                row = dict(budget=budget, method=method, achieved=res.achieved_ratio,
                           distortion=measured_distortion(model, heldout, ref, outputs),
                           timings=res.timings)
                if not args.no_ap:
                    with tempfile.TemporaryDirectory() as tmp:
                        path = osp.join(tmp, 'm.pth')
                        torch.save(dict(state_dict=model.state_dict(), meta={}), path)
                        row['ap'] = summarize_kitti_metrics(evaluate_checkpoint(
                            args.config, path, args.data_root, osp.join(args.out, 'eval')))
                rows.append(row)
                print(f"[bench] {budget} {method}: achieved {row['achieved']:.3f} distortion "
                      f"{row['distortion']:.4g} car-mod {car_mod(row.get('ap', {}))} "
                      f"mAP {moderate_map(row.get('ap', {}))}", flush=True)
        # Tab. 5: predicted vs actual distortion curves, and the allocation time split
        corr, times = {}, {}
        curves = {}
        for est in ('fisher', 'taylor2', 'actual'):
            model = copy.deepcopy(dense)
            res = DM3DPruner(args.budgets[0], estimator=est, num_ratios=args.corr_ratios,
                             progress=False).prune(model, calib)
            curves[est] = {n: c['distortion'] for n, c in res.curves.items()}
            times[est] = res.timings
        for est in ('fisher', 'taylor2'):
            corr[est] = float(np.nanmean([spearman(curves[est][n][1:], curves['actual'][n][1:])
                                          for n in curves[est]]))
        def fmt(v):
            return '-' if v is None else f'{v:.1f}'
        print('\n| budget | method | achieved FLOPs | held-out distortion | Car mod | mAP mod |')
        print('|---:|---|---:|---:|---:|---:|')
        if dense_ap:
            print(f'| 1.00 | dense | 1.000 | 0 | {fmt(car_mod(dense_ap))} | '
                  f'{fmt(moderate_map(dense_ap))} |')
        for r in rows:
            ap = r.get('ap', {})
            print(f"| {r['budget']:.2f} | {r['method']} | {r['achieved']:.3f} | "
                  f"{r['distortion']:.4g} | {fmt(car_mod(ap))} | {fmt(moderate_map(ap))} |")
        print('\n| estimator | mean per-layer Spearman vs actual |\n|---|---:|')
        for est, c in corr.items():
            print(f'| {est} | {c:.3f} |')
        # allocation time against the gradient pass alone (same layers, frames, projections)
        grad_alone = []
        for _ in range(2):
            model = copy.deepcopy(dense)
            layers = find_prunable_layers(model)  # the pruner's default selection
            t0 = time.perf_counter()
            collect_gradients(model, layers, calib, outputs, progress=False)
            grad_alone.append(time.perf_counter() - t0)
        g = min(grad_alone)
        print(f'\ngradient pass alone (no counting): {g:.2f} s over {len(calib)} frames\n')
        print('| estimator | calibration pass s (count + reference + gradients) | curves s | '
              'candidate costs s | DP s | allocation s | / gradient pass |')
        print('|---|---:|---:|---:|---:|---:|---:|')
        timed = [(f"fisher ({args.num_ratios} ratios, budget {r['budget']})", r['timings'])
                 for r in rows if r['method'] == 'dm3d']
        timed += [(f'{est} ({args.corr_ratios} ratios, budget {args.budgets[0]})', t)
                  for est, t in times.items()]
        for name, t in timed:
            print(f"| {name} | {t.get('calibration_pass', 0):.2f} | {t.get('curves', 0):.2f} | "
                  f"{t.get('candidate_costs', 0):.2f} | {t.get('dp', 0):.3f} | "
                  f"{t.get('total', 0):.2f} | {t.get('total', 0) / g:.2f} |")
        with open(osp.join(args.out, 'bench_prune.json'), 'w') as f:
            json.dump(dict(rows=rows, dense_ap=dense_ap, spearman=corr, timings=times,
                           gradient_pass_alone=g), f,
                      indent=1)
