"""The main demo job on the embedded synthetic benchmark.

1. evaluates the shipped dense demo detectors (SECOND, PointPillars, CenterPoint) on the val
   split with mmdet3d's KittiMetric (a missing checkpoint is trained first, 20-35 min each
   on 2 cores);
2. prunes SECOND with DM3D to a joint-FLOPs target (default 50 %) and evaluates the pruned
   checkpoint before any fine-tuning;
3. evaluates the shipped spatially pruned SECONDs (SPS-Conv 50 % voxels, trained with the
   pruning in place; Ada3D after its three training steps) and the SPS-Conv CenterPoint with
   their joint FLOPs;
4. prunes the SPS-Conv SECOND with the supervised voxel ranking and its 0.3 m margin (the
   SPSS recipe that keeps the dense accuracy on this benchmark) with DM3D (the weight
   budget counted on the spatially pruned model, DM3D paper Tab. 6) and evaluates it before
   fine-tuning;
5. prints per-class AP and the joint FLOPs, and writes the pruning reports.
"""
import argparse
import os.path as osp

import dm3d_mm  # noqa: F401
from dm3d_mm.apis import load_config
from dm3d_mm.apis.cli import add_debug_arg, run_cli
from dm3d_mm.apis.demo import (
    DENSE_DEMO_CONFIGS,
    config_name,
    ensure_demo_checkpoint,
    evaluate_checkpoint,
)
from dm3d_mm.apis.kitti_summary import kitti_ap_table, summarize_kitti_metrics
from dm3d_mm.apis.model import build_detector
from dm3d_mm.apis.prune import build_pruner, calibration_batches, save_result, write_reports
from dm3d_mm.apis.quiet import logged_to
from dm3d_mm.studies.ablation import joint_gmacs

SPSS50 = 'configs/demo/second_synth-kitti_cpu_spss50.py'
ADA3D = 'configs/demo/second_synth-kitti_cpu_ada3d.py'
SPSS50_FGM = 'configs/demo/second_synth-kitti_cpu_spss50_fg-margin.py'
SPSS50_FGM_DM3D = 'configs/demo/second_synth-kitti_cpu_spss50_fg-margin_dm3d50.py'
CP_SPSS50_FGM = 'configs/demo/centerpoint_synth-kitti_cpu_spss50_fg-margin.py'
SPATIAL = ((SPSS50, 'SPS-Conv, 50 % of the voxels pruned in every encoder stage, trained '
            'with the pruning in place'),
           (SPSS50_FGM, 'SPS-Conv at 50 % with the voxels ranked by a foreground scorer '
            'trained against the GT boxes grown by 0.3 m (SPSSVoxelNet), trained with the '
            'pruning in place'),
           (ADA3D, 'Ada3D, 75 % of the BEV columns kept after 3D stages 2 and 4, 50 % in '
            'the 2D backbone, three-step training'),
           (CP_SPSS50_FGM, 'CenterPoint with the same SPS-Conv recipe (50 %, foreground '
            'ranking, 0.3 m margin; SPSSCenterPoint), trained with the pruning in place'))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data-root', default='data/synth_kitti')
    p.add_argument('--checkpoint-dir', default='checkpoints')
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--configs', nargs='+', default=list(DENSE_DEMO_CONFIGS))
    p.add_argument('--flops-target', type=float, default=0.5)
    p.add_argument('--calib-frames', type=int, default=16)
    add_debug_arg(p)
    args = p.parse_args()
    args.log = osp.join(args.work_dir, 'demo.log')
    print(f'[demo] logs of every step: {args.log}', flush=True)
    tables = []
    ckpts = {}
    for config in args.configs:
        ckpts[config] = checkpoint_for(config, args)
        tables.append(f'### {config_name(config)} (dense)\n' +
                      kitti_ap_table(evaluate(config, ckpts[config], args)))
    dense_ckpt = ckpts[args.configs[0]]
    lines = []
    ap, result, report = prune_and_evaluate(args.configs[0], dense_ckpt, args)
    tables.append(f'### {config_name(args.configs[0])}: DM3D to {result.achieved_ratio:.3f} '
                  'of its joint FLOPs (no fine-tuning)\n' + kitti_ap_table(ap))
    lines.append(f'[demo] DM3D: joint MACs per frame {result.macs_before / 1e9:.3f} G -> '
                 f'{result.macs_after / 1e9:.3f} G; report: {report}')
    for config, label in SPATIAL:
        ckpts[config] = checkpoint_for(config, args)
        ap = evaluate(config, ckpts[config], args)
        gmacs = joint_gmacs_of(config, ckpts[config], args)
        tables.append(f'### {config_name(config)}: {label}\n' + kitti_ap_table(ap))
        lines.append(f'[demo] {config_name(config)}: joint MACs per frame {gmacs:.3f} G')
    ap, result, report = prune_and_evaluate(SPSS50_FGM_DM3D, ckpts[SPSS50_FGM], args)
    tables.append(f'### {config_name(SPSS50_FGM_DM3D)}: SPS-Conv + DM3D to '
                  f'{result.achieved_ratio:.3f} of its joint FLOPs (no fine-tuning)\n' +
                  kitti_ap_table(ap))
    lines.append(f'[demo] SPS-Conv + DM3D: joint MACs per frame {result.macs_before / 1e9:.3f}'
                 f' G -> {result.macs_after / 1e9:.3f} G; report: {report}')
    print('\n[demo] results on the synthetic val split\n')
    print('\n\n'.join(tables))
    print('\n' + '\n'.join(lines))


def checkpoint_for(config, args):
    ckpt = osp.join(args.checkpoint_dir, f'{config_name(config)}.pth')
    if not osp.exists(ckpt):
        print(f'[demo] {ckpt} missing: training it first', flush=True)
    with logged_to(args.log):
        return ensure_demo_checkpoint(config, args.data_root, args.checkpoint_dir)


def evaluate(config, checkpoint, args):
    print(f'[demo] evaluating {config_name(config)} on the val split', flush=True)
    with logged_to(args.log):
        metrics = evaluate_checkpoint(config, checkpoint, args.data_root,
                                      osp.join(args.work_dir, config_name(config)))
    return summarize_kitti_metrics(metrics)


def joint_gmacs_of(config, checkpoint, args):
    """Joint MACs per frame of a checkpoint on the calibration frames of the val split."""
    with logged_to(args.log):
        cfg = load_config(config, data_root=args.data_root)
        model = build_detector(cfg, checkpoint)
        return joint_gmacs(model, calibration_batches(cfg, args.calib_frames, 'val'))


def prune_and_evaluate(config, checkpoint, args):
    """DM3D-prune ``config`` from ``checkpoint``, save the result, evaluate it on val."""
    name = config_name(config)
    print(f'[demo] DM3D pruning of {name} to {args.flops_target:.0%} of its joint FLOPs, '
          'then evaluating it', flush=True)
    out_dir = osp.join(args.work_dir, f'{name}_dm3d{int(100 * args.flops_target)}')
    with logged_to(args.log):
        cfg = load_config(config, data_root=args.data_root)
        model = build_detector(cfg, checkpoint)
        pruner = build_pruner(cfg, flops_target=args.flops_target, progress=False)
        result = pruner.prune(model, calibration_batches(cfg, args.calib_frames, 'train'))
        pruned = save_result(model, result, osp.join(out_dir, 'pruned.pth'), checkpoint,
                             config)
        ap = summarize_kitti_metrics(evaluate_checkpoint(config, pruned, args.data_root,
                                                         osp.join(out_dir, 'eval')))
    paths = write_reports(result, out_dir, dict(AP_pruned=ap))
    return ap, result, paths['md']


if __name__ == '__main__':
    run_cli(main)
