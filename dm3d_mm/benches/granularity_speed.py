"""Which weight granularity runs faster? A demo detector (--detector: SECOND or CenterPoint)
pruned by DM3D to a fraction of its joint FLOPs at each granularity, timed side by side with
the dense detector, before and (--finetune-epochs N) after the demo fine-tune.

Granularities (--granularities, any of):
  weight   unstructured masks: the dense kernels still run every weight (counted only)
  offset   whole kernel offsets; the spconv convs then run a rulebook without the removed
           offsets (structured/offset_skip.py); a 2D conv's removed kernel positions stay masked
           in the dense kernel (counted only)
  channel  whole output channels, cut out of the model (apis/slim.py: a smaller dense
           detector with its own config)
  offset+channel
           the 3D encoder's convs by whole kernel offsets (skipped), every other pruned
           layer by channels (slim): where each pays on CPU (spconv's per-offset loop; the
           dense 2D kernels' widths); fine-tuned as masks, timed as slim + offset skipping
           (the same outputs). With --encoder-offsets F the encoder's offsets are
           pruned first, to F of its own FLOPs (its FLOPs share is small, so one DP over
           FLOPs leaves it almost whole though it is half the CPU time), then the other
           parts' channels to the row's budget

Per row: joint GMACs (the slim model: what it computes), val 3D AP40 moderate before the
fine-tune (unless --no-ap), wall time per frame of the whole detector (voxelization to head
outputs) and of its 3D / 2D / head parts as ratios to dense (interleaved, best of --repeats,
the same frames). --finetune-epochs N fine-tunes every pruned row on the ablation's dense-ft
schedule with frozen norm statistics (masked rows with their masks kept by DM3DPruningHook,
slim rows through their own config) and evaluates it again.

--parts picks the pruned parts (default: the 2D backbone and neck), --budget-of parts makes
each budget a fraction of those parts' own FLOPs; --voxelizer sort times every model with the
grid-free voxelization (the same voxels); --round-to 8 keeps multiples of 8 channels;
--cost latency lets the DP count seconds measured on this machine (each budget is then a
fraction of the dense detector's measured time; channel rows only: masks save no time).

Example: python tools/bench.py granularity_speed --budgets 0.5 0.33 --frames 8 --repeats 3
         python tools/bench.py granularity_speed --parts middle_encoder --budget-of parts \
             --granularities weight offset --budgets 0.5          # the 3D encoder alone
         python tools/bench.py granularity_speed --detector centerpoint --parts pts_middle_encoder \
             pts_backbone pts_neck pts_bbox_head --voxelizer sort --round-to 8
"""
import copy
import json
import os.path as osp
from collections import OrderedDict

from ..apis import load_config
from ..apis.demo import evaluate_model
from ..apis.finetune import finetune_and_test
from ..apis.kitti_summary import CLASSES, summarize_kitti_metrics
from ..apis.model import build_detector
from ..apis.slim import export_slim
from ..models.sort_voxelization import use_sort_voxelization
from ..pruning import DM3DPruner
from ..pruning.checkpoint import save_pruned_checkpoint
from ..registry import BENCHES
from ..structured.offset_skip import skip_pruned_offsets
from ..studies.ablation import CONTROL_FINETUNE_HOOK, MASKED_FINETUNE_HOOK, joint_gmacs
from ..studies.cells import DETECTORS
from ..studies.wall_time import add_bench_args, bench_setup, measure, ratio_table
from .base import Bench
from .helpers import with_ap

GRANULARITIES = ('weight', 'offset', 'channel', 'offset+channel')
# masked rows fine-tune with their masks kept, norm statistics frozen (the ablation's cells);
# slim rows, dense models of their own, with the statistics frozen as the ablation's controls
MASKED_FT_HOOKS = [MASKED_FINETUNE_HOOK]
SLIM_FT_HOOKS = [CONTROL_FINETUNE_HOOK]



@BENCHES.register_module(name='granularity_speed')
class GranularitySpeedBench(Bench):
    """Weight, offset and channel granularity timed side by side with dense."""

    def add_arguments(self, p) -> None:
        p.add_argument('--detector', choices=sorted(DETECTORS), default='second',
                       help="a demo detector, on its dense-ft (the ablation's) schedule")
        p.add_argument('--budgets', type=float, nargs='+', default=[0.5, 0.33])
        p.add_argument('--granularities', nargs='+', choices=GRANULARITIES,
                       default=list(GRANULARITIES[:3]))
        p.add_argument('--parts', nargs='+',
                       help="parts pruned (default: the detector's 2D backbone and neck; "
                            "middle_encoder: the 3D encoder too)")
        p.add_argument('--budget-of', choices=('model', 'parts'), default='model',
                       help="each budget is a fraction of the whole detector's joint FLOPs or "
                            "of the pruned parts' own")
        p.add_argument('--encoder-offsets', type=float,
                       help="offset+channel rows: prune the 3D encoder's kernel offsets to this "
                            "fraction of its own FLOPs first, then the other parts' channels")
        p.add_argument('--finetune-epochs', type=int, default=0)
        p.add_argument('--cost', choices=('flops', 'latency'), default='flops',
                       help="what the DP's budget counts (latency: measured seconds)")
        p.add_argument('--min-density', type=float, default=0.0,
                       help='lowest fraction of weights (channels) a pruned layer keeps')
        p.add_argument('--round-to', type=int, default=1,
                       help='channel rows keep multiples of N channels per layer')
        add_bench_args(p, 'work_dirs/bench_granularity_speed')

    def run(self, args) -> None:
        grans = ['channel'] if args.cost == 'latency' else args.granularities
        setup = DETECTORS[args.detector]
        ckpt = setup.checkpoint
        parts = args.parts or list(setup.parts['2D'].parts)
        cfg, calib, frames, dense = bench_setup(args, setup.finetune_config, ckpt)
        models = OrderedDict(dense=dense)
        cfgs, finetune = dict(dense=cfg), {}  # row -> (config, checkpoint, hooks) to fine-tune
        for b in args.budgets:
            for gran in grans:
                model = build_detector(cfg, ckpt)
                if args.voxelizer == 'sort':  # the latency DP times what the bench will time
                    use_sort_voxelization(model)
                channel = dict(type='channel', round_to=args.round_to)
                granularity = {'channel': channel, 'offset+channel': {
                    '*middle_encoder.*': 'offset', '*': channel}}.get(gran, gran)
                row_parts, masks = parts, {}
                if gran == 'offset+channel' and args.encoder_offsets:
                    encoder = [q for q in parts if q.endswith('middle_encoder')]
                    masks = DM3DPruner(args.encoder_offsets, parts=encoder, num_ratios=16,
                                       granularity='offset', budget_of='parts', progress=False,
                                       **setup.pruner).prune(model, calib).masks
                    row_parts, granularity = [q for q in parts if q not in encoder], channel
                result = DM3DPruner(b, parts=row_parts, num_ratios=16, granularity=granularity,
                                    progress=False, cost=args.cost, min_density=args.min_density,
                                    budget_of=args.budget_of,
                                    **setup.pruner).prune(model, calib)
                masks.update(result.masks)
                if args.cost == 'latency':
                    c = result.cost
                    print(f"channel {b:g}, latency DP: {c['before'] * 1e3:.1f} -> "
                          f"{c['after'] * 1e3:.1f} ms per frame predicted (test_step)")
                pruned = osp.join(args.out, f'{gran}{b:g}', 'pruned.pth')
                save_pruned_checkpoint(pruned, model, masks, result.info(), source=ckpt)
                if gran in ('channel', 'offset+channel'):
                    out = export_slim(cfg, pruned, osp.dirname(pruned), 'slim')
                    print(f'{gran} {b:g}: widths {out["widths"]}')
                    dp = ', latency DP' if args.cost == 'latency' else ''
                    slim_cfg = load_config(out['config'], data_root=args.data_root)
                    model = build_detector(slim_cfg, out['checkpoint']).eval()
                    if gran == 'channel':
                        name = f'DM3D {b:g} channel, slim{dp}'
                        finetune[name] = (out['config'], None, SLIM_FT_HOOKS)
                    else:  # fine-tuned as masks (offsets kept removed): the same outputs
                        swapped = skip_pruned_offsets(model)
                        name = (f'DM3D {b:g} offset+channel, slim{dp}, {len(swapped)} sparse '
                                'convs skip removed offsets')
                        finetune[name] = (setup.finetune_config, pruned, MASKED_FT_HOOKS)
                    models[name], cfgs[name] = model, slim_cfg
                    continue
                if gran == 'offset':
                    model = copy.deepcopy(model)  # the masked model stays as saved
                    swapped = skip_pruned_offsets(model)
                    name = f'DM3D {b:g} offset, {len(swapped)} sparse convs skip removed offsets'
                else:
                    name = f'DM3D {b:g} weight, masks (counted only)'
                models[name], cfgs[name] = model.eval(), cfg
                finetune[name] = (setup.finetune_config, pruned, MASKED_FT_HOOKS)
        rows = OrderedDict()
        for i, (name, model) in enumerate(models.items()):
            rows[name] = dict(gmacs=joint_gmacs(model, frames))
            if not args.no_ap:
                with_ap(rows[name], evaluate_model(model, cfgs[name],
                                                   osp.join(args.out, f'eval{i}')))
        times = measure(models, frames, args.repeats, args.voxelizer)
        print(ratio_table(rows, times))
        if args.finetune_epochs:
            for i, (name, (config, load_from, hooks)) in enumerate(finetune.items()):
                ft = finetune_and_test(config, args.data_root, osp.join(args.out, f'finetune{i}'),
                                       load_from=load_from, epochs=args.finetune_epochs,
                                       cfg_options=dict(custom_hooks=hooks))
                ap = summarize_kitti_metrics(ft['metrics'])
                rows[name]['finetuned'] = with_ap(dict(epochs=args.finetune_epochs,
                                                       train_seconds=ft['train_seconds']), ap)
                mod = ' / '.join(f"{ap[c]['moderate']:.1f}" for c in CLASSES)
                print(f"{name}, fine-tuned {args.finetune_epochs} epochs: {mod} = mAP "
                      f"{rows[name]['finetuned']['mAP']:.1f}")
        with open(osp.join(args.out, 'bench_granularity_speed.json'), 'w') as f:
            json.dump(rows, f, indent=1)
