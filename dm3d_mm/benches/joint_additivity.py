"""How well the joint allocation's additive objective predicts the distortion of the model
it builds, and what the allocation costs in time.

For each budget: the joint pruning of a spatially capable demo detector (every keep-ratio
combination of the grid counted and measured, DM3D's DP per combination); then, for every
combination's best weight allocation (one row of the search's table), the model with those
keep ratios and masks is built and its output distortion measured on the same calibration
frames. Reports the Spearman rank correlation of predicted (spatial + summed weight
distortion) against measured over those allocations (the paper's Tab. 5 view, for the joint
objective), and the allocation's time split against its calibration pass (count + reference
+ gradients in one pass) and against the gradient pass alone (the pruned layers' gradients
over the same frames, no count, timed in the same run, best of 2).
--searches grid coordinate runs each budget with each spatial search (``SPATIAL_SEARCHES``:
every combination, or coordinate descent over the sites) side by side.
Prints markdown tables; writes WORK_DIR/joint_additivity.json.

Example: python tools/bench.py joint_additivity --budgets 0.5 0.25 --calib-frames 8
"""
import json
import os
import os.path as osp
import time

from ..apis import load_config
from ..apis.model import build_detector
from ..apis.prune import calibration_batches
from ..joint.sites import find_sites, set_keep_ratios
from ..pruning import DM3DPruner
from ..registry import BENCHES, SPATIAL_SEARCHES
from ..weight.calibration import collect_gradients, measured_distortion, reference_outputs
from ..weight.head_outputs import build_head_outputs
from ..weight.masks import MaskSet
from .base import Bench
from .helpers import spearman


@BENCHES.register_module(name='joint_additivity')
class JointAdditivityBench(Bench):
    """How well the joint objective predicts the pruned model's distortion."""

    def add_arguments(self, p) -> None:
        p.add_argument('--config', default='configs/demo/second_synth-kitti_cpu_ada3d.py')
        p.add_argument('--checkpoint', default='checkpoints/second_synth-kitti_cpu_ada3d.pth')
        p.add_argument('--data-root', default='data/synth_kitti')
        p.add_argument('--budgets', type=float, nargs='+', default=[0.5, 0.25],
                       help='fractions of the model with every keep ratio at its largest')
        p.add_argument('--grid', type=float, nargs='+', help='keep ratios tried at every site')
        p.add_argument('--searches', nargs='+', default=['grid'],
                       choices=sorted(SPATIAL_SEARCHES.module_dict),
                       help='spatial searches to run at every budget')
        p.add_argument('--parts', nargs='+', default=['middle_encoder', 'backbone', 'neck'])
        p.add_argument('--calib-frames', type=int, default=8)
        p.add_argument('--num-ratios', type=int, default=16)
        p.add_argument('--work-dir', default='work_dirs/bench_joint')

    def run(self, args) -> None:
        cfg = load_config(args.config, data_root=args.data_root)
        batches = calibration_batches(cfg, args.calib_frames, 'train')
        results = []
        for budget, search in [(b, s) for b in args.budgets for s in args.searches]:
            spatial = dict(grid=args.grid, search=search) if args.grid else dict(search=search)
            model = build_detector(cfg, args.checkpoint)
            pruner = DM3DPruner(budget, parts=args.parts, num_ratios=args.num_ratios,
                                progress=False, spatial=spatial)
            res = pruner.prune(model, batches)
            fresh = build_detector(cfg, args.checkpoint)  # dense weights, trained keep ratios
            outputs = build_head_outputs(fresh)
            reference = reference_outputs(fresh, batches, outputs)
            sites = find_sites(fresh, names=list(res.spatial['keep_ratios']))
            trained = {s.name: s.get() for s in sites}
            predicted, measured = [], []
            # every parameter and buffer as trained (spconv keeps its own weight layout: tensors
            # are copied back in place, not through a state_dict)
            state = [(t, t.detach().clone()) for t in (*fresh.parameters(), *fresh.buffers())]
            for row in res.spatial['combinations']:
                if row['objective'] is None:
                    continue
                set_keep_ratios(sites, row['ratios'])
                MaskSet(fresh, pruner.last_call.candidates.masks_of(row['choice'])).apply()
                predicted.append(row['predicted_distortion'])
                measured.append(measured_distortion(fresh, batches, reference, outputs,
                                                    pruner.lambdas))
                for t, saved in state:
                    t.data.copy_(saved)
                set_keep_ratios(sites, trained)
            layers = {n: fresh.get_submodule(n) for n in res.curves}  # the pruned layers
            alone = []
            for _ in range(2):
                t0 = time.perf_counter()
                collect_gradients(fresh, layers, batches, outputs, progress=False)
                alone.append(time.perf_counter() - t0)
            t = res.timings
            searched = t.get('spatial_options', 0) + t.get('curves', 0) + t.get('dp', 0)
            results.append(dict(
                budget=budget, search=search, combinations=len(res.spatial['combinations']),
                forwards=pruner.last_call.joint.space.forwards,
                allocations=len(predicted), spearman=spearman(predicted, measured),
                chosen=res.spatial['keep_ratios'], trained=res.spatial['trained_keep_ratios'],
                chosen_predicted=res.spatial['predicted_distortion'],
                chosen_measured=res.measured_distortion,
                achieved=res.achieved_ratio, timings=t,
                search_over_gradient_pass=(t['calibration_pass'] + searched) /
                t['calibration_pass'],
                gradient_pass_alone=min(alone),
                search_over_gradient_pass_alone=(t['calibration_pass'] + searched) / min(alone),
                predicted=predicted, measured=measured))
        os.makedirs(args.work_dir, exist_ok=True)
        with open(osp.join(args.work_dir, 'joint_additivity.json'), 'w') as f:
            json.dump(results, f, indent=1)
        print('| budget | search | combinations scored | forwards | Spearman (predicted vs '
              'measured, allocations) | chosen keep ratios | chosen: predicted / measured '
              'distortion | achieved FLOPs |')
        print('|---:|---|---:|---:|---:|---|---:|---:|')
        for r in results:
            keep = ', '.join(f"{k.split('.')[-1]} {v:g}" for k, v in r['chosen'].items())
            print(f"| {r['budget']} | {r['search']} | {r['combinations']} | {r['forwards']} | "
                  f"{r['spearman']:.3f} "
                  f"({r['allocations']}) | {keep} | {r['chosen_predicted']:.4g} / "
                  f"{r['chosen_measured']:.4g} | {r['achieved']:.4f} |")
        print('\n| budget | search | calibration pass s | spatial options s | curves s | DP s | '
              'recount s | gradient pass alone s | allocation / calibration pass | '
              'allocation / gradient pass alone |')
        print('|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|')
        for r in results:
            t = r['timings']
            print(f"| {r['budget']} | {r['search']} | {t['calibration_pass']:.1f} | "
                  f"{t['spatial_options']:.1f} | "
                  f"{t['curves']:.2f} | {t['dp']:.2f} | {t.get('recount', 0):.1f} | "
                  f"{r['gradient_pass_alone']:.2f} | {r['search_over_gradient_pass']:.1f}x | "
                  f"{r['search_over_gradient_pass_alone']:.1f}x |")
