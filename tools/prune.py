"""Post-training weight pruning of an mmdet3d detector (DM3D or a baseline), optionally
joint with the keep ratios of its spatial sites (--spatial).

Writes WORK_DIR/pruned.pth (zeros in the weights; masks, allocation, keep ratios and
provenance in meta['dm3d']; never written over the input), prune_report.{json,md},
layer_sparsity.png and, for --spatial, pruned_config.py (the config with the chosen keep
ratios, for plain mmdet3d tools). With --eval, dense and pruned AP on the val split go into
the report.

Examples:
  python tools/prune.py configs/demo/second_synth-kitti_cpu.py \
      --checkpoint checkpoints/second_synth-kitti_cpu.pth --flops-target 0.5 --eval
  python tools/prune.py configs/demo/second_synth-kitti_cpu_ada3d.py \
      --checkpoint checkpoints/second_synth-kitti_cpu_ada3d.pth --flops-target 0.2 --spatial
"""
import argparse
import os.path as osp
import time

import dm3d_mm  # noqa: F401
from dm3d_mm.apis import load_config
from dm3d_mm.apis.cli import (
    add_debug_arg,
    add_model_args,
    add_spatial_objective_args,
    add_spatial_rerank_args,
    run_cli,
    spatial_objective_of,
    spatial_rerank_of,
)
from dm3d_mm.apis.config_utils import add_data_args, parse_ann_files
from dm3d_mm.apis.model import build_detector, default_device
from dm3d_mm.apis.prune import (
    build_pruner,
    calibration_batches,
    count_reference,
    resolve_calib,
    save_result,
    write_pruned_config,
    write_reports,
)
from dm3d_mm.errors import MissingFile, UserError, WouldOverwrite
from dm3d_mm.pruning.pruner import ESTIMATOR_NAMES, METHODS
from dm3d_mm.pruning.result import budget_line
from dm3d_mm.registry import BUDGET_COSTS, GRANULARITIES, SPATIAL_SEARCHES


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('--checkpoint', required=True, help='dense checkpoint to prune')
    p.add_argument('--flops-target', type=float,
                   help='fraction of dense FLOPs to keep, in (0, 1] (default: config)')
    p.add_argument('--method', choices=METHODS)
    p.add_argument('--estimator', choices=ESTIMATOR_NAMES)
    p.add_argument('--num-ratios', type=int, help='candidate ratios per layer (K)')
    p.add_argument('--granularity', choices=sorted(GRANULARITIES.module_dict),
                   help="what is pruned together: 'weight', 'offset' or 'channel' (then "
                        'tools/slim.py cuts the channels out)')
    p.add_argument('--round-to', type=int,
                   help="with --granularity channel: keep multiples of N channels per layer "
                        '(8 suits CPU GEMMs)')
    p.add_argument('--cost', choices=sorted(BUDGET_COSTS.module_dict),
                   help="what the budget counts: 'flops' (joint FLOPs) or 'latency' (seconds "
                        'measured per conv on this device; --flops-target is then a fraction '
                        'of the dense time)')
    p.add_argument('--parts', nargs='+', help='parts to prune, e.g. middle_encoder backbone')
    p.add_argument('--spatial', action='store_true',
                   help='joint allocation: choose the keep ratios of the spatial sites (Ada3D '
                        'locations, SPSS stages) with the weight densities; --flops-target is '
                        'then a fraction of the model without spatial pruning')
    p.add_argument('--spatial-grid', type=float, nargs='+',
                   help='keep ratios tried at every site (default 1.0 0.75 0.5 0.25 and the '
                        "site's own); implies --spatial")
    p.add_argument('--spatial-sites', nargs='+',
                   help='sites to choose, e.g. middle_encoder.bev, or middle_encoder.input on '
                        'an Ada3D model that does not drop there (default: every site the '
                        'model drops at); implies --spatial')
    p.add_argument('--spatial-search', choices=sorted(SPATIAL_SEARCHES.module_dict),
                   help="which combinations of keep ratios are counted: 'grid' (every one, "
                        "the default) or 'coordinate' (coordinate descent over the sites: "
                        'fewer forwards, a combination that no change of one site to a '
                        'neighbouring value improves); '
                        'implies --spatial')
    add_spatial_objective_args(p)
    add_spatial_rerank_args(p)
    p.add_argument('--reference', nargs=2, metavar=('CONFIG', 'CHECKPOINT'),
                   help='the dense detector --flops-target is a fraction of (its joint FLOPs '
                        'counted on the same calibration frames), e.g. the dense SECOND a '
                        'spatial model was trained from; default: the model being pruned '
                        '(with --spatial: at its largest keep ratios)')
    p.add_argument('--allow-over-budget', action='store_true',
                   help='where no pruned model fits the budget, write the closest one (its '
                        'report says OVER BUDGET) instead of failing')
    p.add_argument('--calib-frames', type=int,
                   help='calibration frames (default: pruning.calib.frames, else 16)')
    p.add_argument('--calib-split', choices=['train', 'val', 'test'])
    p.add_argument('--work-dir', help='output directory (default work_dirs/<config>_pruned)')
    add_data_args(p)
    add_model_args(p)
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                   help='distributed calibration: frames are sharded over ranks')
    p.add_argument('--eval', action='store_true', help='dense and pruned AP on the val split')
    add_debug_arg(p)
    return p.parse_args()


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, data_root=args.data_root,
                      ann_files=parse_ann_files(args.ann_file),
                      launcher=args.launcher)
    if args.launcher != 'none':
        from mmengine.dist import init_dist
        init_dist(args.launcher, backend=cfg.get('env_cfg', {}).get('dist_cfg', {}).get(
            'backend', 'nccl'))
    work_dir = args.work_dir or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0] + '_pruned')
    out = osp.join(work_dir, 'pruned.pth')
    if not osp.isfile(args.checkpoint):
        raise MissingFile(f'checkpoint not found: {args.checkpoint}')
    if osp.exists(out) and osp.samefile(out, args.checkpoint):
        raise WouldOverwrite(f'{out} is the input checkpoint: choose another --work-dir')
    granularity = args.granularity
    if args.round_to is not None:
        if granularity != 'channel':
            raise UserError('--round-to needs --granularity channel')
        granularity = dict(type='channel', round_to=args.round_to)
    spatial = None
    objective, rerank = spatial_objective_of(args), spatial_rerank_of(args)
    if args.spatial or args.spatial_grid or args.spatial_sites or args.spatial_search or \
            objective or rerank:
        spatial = dict((cfg.get('pruning') or {}).get('spatial') or {})
        if objective:
            spatial['objective'] = objective
        if rerank:
            spatial['rerank'] = rerank
        if args.spatial_search:
            spatial['search'] = args.spatial_search
        if args.spatial_grid:
            spatial['grid'] = args.spatial_grid
        if args.spatial_sites:
            spatial['sites'] = args.spatial_sites
    calib = resolve_calib(cfg, dict(frames=args.calib_frames, split=args.calib_split))
    device = args.device or default_device()
    t0 = time.time()
    batches = calibration_batches(cfg, calib['frames'], calib['split'])
    # the reference counted on the frames the pruning counts on
    reference = count_reference(*args.reference, batches, device, args.cfg_options) \
        if args.reference else None
    pruner = build_pruner(cfg, flops_target=args.flops_target, method=args.method,
                          estimator=args.estimator, num_ratios=args.num_ratios,
                          parts=args.parts, granularity=granularity, cost=args.cost,
                          spatial=spatial, reference=reference,
                          allow_over_budget=args.allow_over_budget or None)
    model = build_detector(cfg, args.checkpoint, device, strict=not args.allow_partial)
    result = pruner.prune(model, batches)
    extra = dict(config=args.config, checkpoint=args.checkpoint, calib_frames=len(batches),
                 calib_split=calib['split'], wall_seconds=round(time.time() - t0, 1))
    from mmengine.dist import is_main_process
    if not is_main_process():
        return
    save_result(model, result, out, args.checkpoint, args.config, extra)
    pruned_config = write_pruned_config(model, result, args.config,
                                        osp.join(work_dir, 'pruned_config.py'))
    if pruned_config:
        extra['pruned_config'] = pruned_config
    if args.eval:
        from dm3d_mm.apis.demo import evaluate_checkpoint
        from dm3d_mm.apis.kitti_summary import summarize_kitti_metrics
        for tag, ckpt, config in (('dense', args.checkpoint, args.config),
                                  ('pruned', out, pruned_config or args.config)):
            metrics = evaluate_checkpoint(config, ckpt, cfg.data_root,
                                          osp.join(work_dir, f'eval_{tag}'), args.cfg_options,
                                          parse_ann_files(args.ann_file))
            extra[f'AP_{tag}'] = summarize_kitti_metrics(metrics)
    paths = write_reports(result, work_dir, extra)
    print(open(paths['md']).read())
    print(f'pruned checkpoint: {out}\nreports: {paths}')
    if not result.fits:
        print(f'OVER BUDGET (kept as --allow-over-budget asks): {budget_line(result.info())}')


if __name__ == '__main__':
    run_cli(main)
