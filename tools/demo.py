"""The main demo job on the embedded synthetic benchmark: the joint allocation of spatial
keep ratios and weight densities against the methods it combines, for SECOND and
CenterPoint.

1. makes sure the shipped demo checkpoints are there (a missing one is trained first,
   20-35 min each on 2 cores) and evaluates the dense PointPillars;
2. per detector: dense, DM3D alone, each spatial model alone (SPS-Conv with the foreground
   ranking, Ada3D), Ada3D at its trained keep ratios + DM3D (hand-set) and the joint
   allocation at the same joint FLOPs, each pruned by the tools' pruner, counted afresh and
   evaluated on the whole val split (no fine-tuning), then timed side by side in one run;
   the joint row also with its shipped fine-tuned checkpoint where there is one;
3. prints the summary table, writes the frontier plot (mAP against joint FLOPs and against
   wall time) and says how long it took.
"""
import argparse
import os
import os.path as osp
import time

import dm3d_mm  # noqa: F401
from dm3d_mm.apis.cli import add_debug_arg, run_cli
from dm3d_mm.apis.demo import (
    config_making,
    config_name,
    ensure_demo_checkpoint,
    evaluate_checkpoint,
)
from dm3d_mm.apis.kitti_summary import kitti_ap_table, summarize_kitti_metrics
from dm3d_mm.apis.quiet import logged_to
from dm3d_mm.studies.cells import DETECTORS
from dm3d_mm.studies.demo_summary import (
    DEMO_DETECTORS,
    plot_summary,
    run_detector,
    summary_table,
)

POINTPILLARS = 'configs/demo/pointpillars_synth-kitti_cpu.py'
CHECKPOINTS = 'checkpoints'  # the shipped ones (the rows' cells read them from there)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data-root', default='data/synth_kitti')
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--frames', type=int, default=4, help='val frames timed per model')
    p.add_argument('--repeats', type=int, default=3, help='timed passes (best of)')
    add_debug_arg(p)
    args = p.parse_args()
    start = time.perf_counter()
    os.makedirs(args.work_dir, exist_ok=True)
    log = osp.join(args.work_dir, 'demo.log')
    print(f'[demo] logs of every step: {log}', flush=True)
    for spec in DEMO_DETECTORS:  # the checkpoints every row starts from
        setup = DETECTORS[spec.detector]
        for ckpt in [setup.checkpoint] + [setup.spatial[s].checkpoint
                                          for s in (*spec.spatial, spec.joint_on)]:
            checkpoint_for(config_making(ckpt), args, log)
    print(f'[demo] evaluating {config_name(POINTPILLARS)} on the val split', flush=True)
    with logged_to(log):
        ap = summarize_kitti_metrics(evaluate_checkpoint(
            POINTPILLARS, checkpoint_for(POINTPILLARS, args, log), args.data_root,
            osp.join(args.work_dir, config_name(POINTPILLARS))))
    sections = {}
    for spec in DEMO_DETECTORS:
        print(f'[demo] {spec.title}: dense, DM3D, spatial, hand-set and joint rows '
              '(pruned, counted, evaluated, then timed side by side)', flush=True)
        with logged_to(log):
            sections[spec.title] = run_detector(
                spec, args.data_root, osp.join(args.work_dir, 'summary'), args.frames,
                args.repeats, log=lambda line: print(line, flush=True))
    png = plot_summary(sections, osp.join(args.work_dir, 'demo_summary.png'))
    print('\n[demo] PointPillars (dense)\n' + kitti_ap_table(ap))
    print('\n[demo] summary on the synthetic val split (mAP: moderate 3D AP40 over Car, '
          'Pedestrian, Cyclist; wall time of the whole detector, 2 CPU cores, as a ratio to '
          'dense in this run; weight masks save FLOPs that the dense kernels still compute: '
          '"counted only")\n')
    print(summary_table(sections))
    print(f'\n[demo] frontier plot: {png}')
    print(f'[demo] done in {time.perf_counter() - start:.0f} s')


def checkpoint_for(config: str, args, log: str) -> str:
    """The shipped checkpoint of ``config`` (trained first if it is missing)."""
    ckpt = osp.join(CHECKPOINTS, f'{config_name(config)}.pth')
    if not osp.exists(ckpt):
        print(f'[demo] {ckpt} missing: training it first', flush=True)
    with logged_to(log):
        return ensure_demo_checkpoint(config, args.data_root, CHECKPOINTS)


if __name__ == '__main__':
    run_cli(main)
