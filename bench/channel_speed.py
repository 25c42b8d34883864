"""Does channel-structured DM3D run faster? A demo detector's (--detector: SECOND or
CenterPoint) 2D backbone and neck (or --parts) pruned by DM3D to a fraction of the whole
detector's joint FLOPs, unstructured ('weight' masks: the dense kernels still run every
weight, counted only) against whole output channels cut out of the model ('channel', then
weight/slim.py: a smaller dense detector), timed side by side.

Rows: dense; per --budgets: DM3D 'weight' masks and DM3D 'channel' slim. Per row: joint
GMACs (for the slim model: what it computes), val 3D AP40 moderate before fine-tuning, wall
time per frame of the whole detector (voxelization to head outputs) and of its 3D / 2D /
head parts as ratios to dense (interleaved, best of --repeats, the same frames). With
--finetune-epochs N the slim models are also fine-tuned with the demo's fine-tune recipe
and frozen norm statistics (the ablation's dense-ft control schedule) and evaluated again.

--voxelizer sort times every model with the grid-free voxelization (the same voxels);
--round-to 8 keeps multiples of 8 channels per layer; --cost latency lets the DP count
seconds measured on this machine instead of FLOPs (each budget is then a fraction of the
dense detector's measured time; no 'weight' rows: unstructured masks save no time).

Example: python bench/channel_speed.py --budgets 0.5 0.33 --frames 8 --repeats 3
         python bench/channel_speed.py --detector centerpoint --parts pts_middle_encoder \
             pts_backbone pts_neck pts_bbox_head --voxelizer sort --round-to 8
"""
import argparse
import json
import os.path as osp
from collections import OrderedDict

import dm3d_mm  # noqa: F401
from dm3d_mm.apis import load_config
from dm3d_mm.apis.ablate import joint_gmacs
from dm3d_mm.apis.ablate_cells import DETECTORS
from dm3d_mm.apis.demo import evaluate_model
from dm3d_mm.apis.demo_report import summarize_kitti_metrics
from dm3d_mm.apis.finetune import finetune_and_test
from dm3d_mm.apis.flops import build_detector
from dm3d_mm.apis.slim import export_slim
from dm3d_mm.apis.wall_time import add_bench_args, bench_setup, measure, ratio_table
from dm3d_mm.models.sort_voxelization import use_sort_voxelization
from dm3d_mm.weight import DM3DPruner
from dm3d_mm.weight.checkpoint import save_pruned_checkpoint

CLASSES = ('Car', 'Pedestrian', 'Cyclist')


def with_ap(row, ap):
    row.update(ap=ap, mAP=sum(ap[c]['moderate'] for c in CLASSES) / 3)
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--detector', choices=sorted(DETECTORS), default='second',
                   help="a demo detector, on its dense-ft (the ablation's) schedule")
    p.add_argument('--budgets', type=float, nargs='+', default=[0.5, 0.33])
    p.add_argument('--parts', nargs='+',
                   help="parts pruned (default: the detector's 2D backbone and neck; "
                        "middle_encoder: the 3D encoder's channels too)")
    p.add_argument('--finetune-epochs', type=int, default=0)
    p.add_argument('--cost', choices=('flops', 'latency'), default='flops',
                   help="what the DP's budget counts (latency: measured seconds)")
    p.add_argument('--min-density', type=float, default=0.0,
                   help='lowest fraction of weights (channels) a pruned layer keeps')
    p.add_argument('--round-to', type=int, default=1,
                   help='channel rows keep multiples of N channels per layer')
    args = add_bench_args(p, 'work_dirs/bench_channel_speed').parse_args()
    setup = DETECTORS[args.detector]
    ckpt = setup.checkpoint
    parts = args.parts or list(setup.parts['2D'].parts)
    cfg, calib, frames, dense = bench_setup(args, setup.finetune_config, ckpt)
    models = OrderedDict(dense=dense)
    cfgs, slim_out = dict(dense=cfg), {}
    for b in args.budgets:
        for gran in ('weight', 'channel') if args.cost == 'flops' else ('channel', ):
            model = build_detector(cfg, ckpt)
            if args.voxelizer == 'sort':  # the latency DP times what the bench will time
                use_sort_voxelization(model)
            granularity = dict(type=gran, round_to=args.round_to) if gran == 'channel' else gran
            result = DM3DPruner(b, parts=parts, num_ratios=16, granularity=granularity,
                                progress=False, cost=args.cost, min_density=args.min_density,
                                **setup.pruner).prune(model, calib)
            if args.cost == 'latency':
                c = result.cost
                print(f"channel {b:g}, latency DP: {c['before'] * 1e3:.1f} -> "
                      f"{c['after'] * 1e3:.1f} ms per frame predicted (test_step)")
            if gran == 'weight':
                models[f'DM3D {b:g} weight, masks'] = model.eval()
                cfgs[f'DM3D {b:g} weight, masks'] = cfg
                continue
            pruned = osp.join(args.out, f'channel{b:g}', 'pruned.pth')
            save_pruned_checkpoint(pruned, model, result.masks, result.info(), source=ckpt)
            out = export_slim(cfg, pruned, osp.dirname(pruned), 'slim')
            print(f'channel {b:g}: widths {out["widths"]}')
            dp = ', latency DP' if args.cost == 'latency' else ''
            name = f'DM3D {b:g} channel, slim{dp}'
            slim_cfg = load_config(out['config'], data_root=args.data_root)
            models[name] = build_detector(slim_cfg, out['checkpoint']).eval()
            cfgs[name], slim_out[name] = slim_cfg, out
    rows = OrderedDict()
    for i, (name, model) in enumerate(models.items()):
        rows[name] = dict(gmacs=joint_gmacs(model, frames))
        if not args.no_ap:
            with_ap(rows[name], evaluate_model(model, cfgs[name], osp.join(args.out, f'eval{i}')))
    times = measure(models, frames, args.repeats, args.voxelizer)
    print(ratio_table(rows, times))
    if args.finetune_epochs:
        for name, out in slim_out.items():
            hooks = dict(custom_hooks=[dict(type='FreezeNormStatsHook')])
            ft = finetune_and_test(out['config'], args.data_root,
                                   osp.join(osp.dirname(out['config']), 'finetune'),
                                   epochs=args.finetune_epochs, cfg_options=hooks)
            ap = summarize_kitti_metrics(ft['metrics'])
            rows[name]['finetuned'] = with_ap(dict(epochs=args.finetune_epochs,
                                                   train_seconds=ft['train_seconds']), ap)
            mod = ' / '.join(f"{ap[c]['moderate']:.1f}" for c in CLASSES)
            print(f"{name}, fine-tuned {args.finetune_epochs} epochs: {mod} = mAP "
                  f"{rows[name]['finetuned']['mAP']:.1f}")
    with open(osp.join(args.out, 'bench_channel_speed.json'), 'w') as f:
        json.dump(rows, f, indent=1)


if __name__ == '__main__':
    main()
