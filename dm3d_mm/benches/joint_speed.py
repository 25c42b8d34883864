"""What the joint allocation buys in wall time: a demo detector (dense), its Ada3D model at
the trained keep ratios, Ada3D + DM3D channel pruning at the trained ratios (hand-set) and the
joint allocation with channel granularity (keep ratios chosen with the widths), each channel
row exported slim, timed side by side.

Per row: joint GMACs (what the slim model computes), val 3D AP40 moderate before any
fine-tune (unless --no-ap), wall time per frame of the whole detector (voxelization to head
outputs) and of its 3D / 2D / head parts as ratios to dense (interleaved, best of --repeats,
the same frames), and the keep ratios in force. --finetune-epochs N fine-tunes every pruned
row (slim models through their own config, norm statistics frozen) and the dense-ft control
on the same schedule, and evaluates them again (--seed: the fine-tunes' random seed).

--time-budgets T ... adds, per T, the joint allocation with channel granularity whose budget
counts measured seconds (``cost='latency'``): T is a fraction of the dense detector's wall
time, timed on the calibration frames the way the latency cost times every combination.

--keep-rows 'input=0.5' ... adds, per argument, the Ada3D model at other keep ratios
(``location=keep`` pairs, comma-separated, over the trained ratios; spatial pruning alone, no
weight pruned), fine-tuned with the others. --sites names the Ada3D locations the joint rows
choose (default: those the model was trained to drop at; ``input`` adds the encoder's input).
--voxelizer sort gives every model the grid-free voxelization, in the pruner's timings too.

--detector centerpoint runs the same rows on the demo CenterPoint (channel granularity on the
3D encoder, 2D backbone, neck and CenterHead). --ada3d-model CONFIG builds the Ada3D
checkpoint, and every row pruned from it, as that config's model (e.g. the CenterPoint whose
head skips the dropped pixels, configs/demo/centerpoint_synth-kitti_cpu_ada3d_sparse-head.py),
on the study's fine-tune schedule and data; the study's model then stays as one more row.

Example: python tools/bench.py joint_speed --budgets 0.2 0.1 --time-budgets 0.5 --frames 8
"""
import copy
import json
import os.path as osp
from collections import OrderedDict
from typing import Dict

from ..apis import load_config
from ..apis.cli import keep_ratios_of
from ..apis.demo import evaluate_model
from ..apis.finetune import finetune_and_test
from ..apis.kitti_summary import summarize_kitti_metrics
from ..apis.model import build_detector
from ..apis.prune import save_result
from ..apis.slim import export_slim
from ..cost.budget_cost import build_cost
from ..errors import UserError
from ..joint.sites import find_sites, keep_ratios, keep_ratios_into_config, set_keep_ratios
from ..pruning import DM3DPruner
from ..registry import BENCHES
from ..studies.ablation import CONTROL_FINETUNE_HOOK, DETECTORS, joint_gmacs, joint_target
from ..studies.wall_time import (
    add_bench_args,
    bench_setup,
    measure,
    ratio_table,
    voxelizer_into_config,
)
from ..weight.allocators import BudgetBelowFloor
from .base import Bench
from .helpers import with_ap

# the parts channel granularity prunes, per detector: SECOND's anchor head stays whole (its
# output convs are the detector's outputs), CenterPoint's shared and task convs are pruned
PARTS = dict(second=['middle_encoder', 'backbone', 'neck'],
             centerpoint=['pts_middle_encoder', 'pts_backbone', 'pts_neck', 'pts_bbox_head'])



def keep_row(ratios: Dict[str, float]) -> str:
    """The row name of a --keep-rows argument's ratios (site name -> keep)."""
    return 'ada3d, ' + ', '.join(f'{n.split(".")[-1]} {k:g}' for n, k in ratios.items())


@BENCHES.register_module(name='joint_speed')
class JointSpeedBench(Bench):
    """What the joint allocation buys in wall time against Ada3D and channels."""

    def add_arguments(self, p) -> None:
        p.add_argument('--budgets', type=float, nargs='+', default=[0.2, 0.1],
                       help="fractions of the dense detector's joint FLOPs")
        p.add_argument('--time-budgets', type=float, nargs='*', default=[],
                       help="fractions of the dense detector's wall time (cost='latency' rows)")
        p.add_argument('--grid', type=float, nargs='+', help='keep ratios tried at every site')
        p.add_argument('--sites', nargs='+',
                       help="the Ada3D encoder's locations chosen (e.g. input stage2 stage4 bev; "
                            'default: those it was trained with)')
        p.add_argument('--keep-rows', nargs='*', default=[], metavar='LOC=KEEP[,LOC=KEEP]',
                       help='rows of the Ada3D model at other keep ratios (spatial alone), e.g. '
                            'input=0.5')
        p.add_argument('--round-to', type=int, default=8)
        p.add_argument('--finetune-epochs', type=int, default=0)
        p.add_argument('--seed', type=int, default=None,
                       help="the fine-tunes' random seed (default: mmengine draws one per run)")
        p.add_argument('--detector', choices=sorted(PARTS), default='second')
        p.add_argument('--ada3d-model', metavar='CONFIG',
                       help="the config whose model the Ada3D checkpoint is built as (default: "
                            "the study's)")
        p.add_argument('--time-every-combination', action='store_true',
                       help='latency rows: time the conv tables under every combination of keep '
                            'ratios (default: timed once, scaled by MACs)')
        add_bench_args(p, 'work_dirs/bench_joint_speed')

    def run(self, args) -> None:
        try:
            keep_rows = [keep_ratios_of([spec], PARTS[args.detector][0]) for spec in args.keep_rows]
        except ValueError as e:
            raise UserError(f'--keep-rows: {e}')
        setup = DETECTORS[args.detector]
        dense_files = (setup.finetune_config, setup.checkpoint)
        ada_files = (setup.spatial['ada3d'].finetune_config, setup.spatial['ada3d'].checkpoint)
        pruner_args = dict(setup.pruner, parts=PARTS[args.detector], num_ratios=16,
                           progress=False)
        cfg, calib, frames, dense = bench_setup(args, *dense_files)
        ada_cfg = voxelizer_into_config(load_config(ada_files[0], data_root=args.data_root),
                                        args.voxelizer)
        models, cfgs = OrderedDict(dense=dense), dict(dense=cfg)
        if args.ada3d_model:  # the study's model as a row; the other model, the study's schedule
            name = 'ada3d, the study\'s model'
            models[name], cfgs[name] = build_detector(ada_cfg, ada_files[1]).eval(), ada_cfg
            ada_cfg = copy.deepcopy(ada_cfg)
            ada_cfg.model = voxelizer_into_config(
                load_config(args.ada3d_model, data_root=args.data_root), args.voxelizer).model
            ada_files = (osp.join(args.out, 'ada3d_config.py'), ada_files[1])
            ada_cfg.dump(ada_files[0])  # what the --keep-rows fine-tunes start from
        models['ada3d'], cfgs['ada3d'] = build_detector(ada_cfg, ada_files[1]).eval(), ada_cfg
        finetune = {}
        dense_gmacs = joint_gmacs(dense, frames)
        ada_gmacs = joint_gmacs(models['ada3d'], frames)
        channel = dict(type='channel', round_to=args.round_to)
        spatial = dict(grid=args.grid) if args.grid else {}
        if args.sites:
            spatial['sites'] = [f'{PARTS[args.detector][0]}.{s}' for s in args.sites]
        rows = []
        for b in args.budgets:
            rows.append((f'joint {b:g}, channel, slim', dict(spatial=spatial),
                         joint_target(models['ada3d'], dense, frames, b, spatial)))
            if b < ada_gmacs / dense_gmacs:  # hand-set: the trained ratios, DM3D to the same FLOPs
                rows.append((f'ada3d + DM3D {b:g}, channel, slim', {}, b * dense_gmacs / ada_gmacs))
        # every conv and every combination timed on all calibration frames, best of --repeats
        latency = dict(type='latency', frames=len(calib), repeats=args.repeats,
                       time_every_combination=args.time_every_combination)
        for t in args.time_budgets:
            rows.append((f'joint {t:g} of the time, channel, slim',
                         dict(spatial=spatial, cost=latency),
                         joint_target(models['ada3d'], dense, calib, t, spatial,
                                      build_cost(latency).whole_seconds)))
        for ratios in keep_rows:
            name = keep_row(ratios)
            model = build_detector(ada_cfg, ada_files[1]).eval()
            set_keep_ratios(find_sites(model, names=list(ratios)), ratios)
            row_cfg = copy.deepcopy(ada_cfg)  # Config.copy() shares the model dict
            keep_ratios_into_config(row_cfg.model, model, ratios)
            models[name], cfgs[name] = model, row_cfg
            encoder = row_cfg.model[PARTS[args.detector][0]]
            finetune[name] = (ada_files[0], ada_files[1], {
                f'model.{PARTS[args.detector][0]}.keep_ratios': encoder['keep_ratios']})
        for name, extra, target in rows:
            model = build_detector(ada_cfg, ada_files[1])
            try:
                result = DM3DPruner(target, granularity=channel, **pruner_args,
                                    **extra).prune(model, calib)
            except BudgetBelowFloor as e:  # what the unpruned rest costs is over the budget
                print(f'{name}: not reachable: {e}')
                continue
            tag = name.split(',')[0].replace(' ', '_').replace('+', '')
            pruned = osp.join(args.out, tag, 'pruned.pth')
            save_result(model, result, pruned, ada_files[1], ada_files[0])
            out = export_slim(ada_cfg, pruned, osp.dirname(pruned), 'slim')
            slim_cfg = load_config(out['config'], data_root=args.data_root)
            models[name] = build_detector(slim_cfg, out['checkpoint']).eval()
            cfgs[name] = slim_cfg
            finetune[name] = (out['config'], None, {})
            print(f'{name}: widths {out["widths"]}, keep ratios '
                  f'{keep_ratios(find_sites(models[name]))}, allocation '
                  f"{result.timings.get('total', 0):.1f} s")
        rows = OrderedDict()
        for name, m in models.items():
            rows[name] = dict(gmacs=joint_gmacs(m, frames),
                              keep_ratios=keep_ratios(find_sites(m)))
            if not args.no_ap:
                with_ap(rows[name], evaluate_model(m, cfgs[name], osp.join(args.out, 'eval')))
        times = measure(models, frames, args.repeats, args.voxelizer)
        print('\nbefore fine-tuning\n' + ratio_table(rows, times))
        if args.finetune_epochs:
            finetune['dense'] = (*dense_files, {})
            seeded = {} if args.seed is None else dict(randomness=dict(seed=args.seed))
            for name, (config, load_from, options) in finetune.items():
                ft = finetune_and_test(config, args.data_root, osp.join(args.out, 'ft', name),
                                       load_from=load_from, epochs=args.finetune_epochs,
                                       cfg_options=dict(options, **seeded,
                                                        custom_hooks=[CONTROL_FINETUNE_HOOK]))
                rows[name + ' (fine-tuned)'] = with_ap(dict(rows[name]),
                                                       summarize_kitti_metrics(ft['metrics']))
            print('\nafter fine-tuning (dense: dense-ft)\n' + '\n'.join(
                f"| {n} | {r['mAP']:.1f} |" for n, r in rows.items() if 'fine-tuned' in n))
        with open(osp.join(args.out, 'joint_speed.json'), 'w') as f:
            json.dump(dict(rows=rows, times=times), f, indent=1)
