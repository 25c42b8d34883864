"""The main demo job on the embedded synthetic benchmark.

Evaluates the shipped demo detectors (SECOND, PointPillars) on the val split with mmdet3d's
KittiMetric and prints per-class AP. A missing checkpoint is trained first (about 10-20
minutes on 2 cores).
"""
import argparse
import os.path as osp

import dm3d_mm  # noqa: F401
from dm3d_mm.apis.demo import (DEMO_CONFIGS, config_name, evaluate_checkpoint,
                               train_demo_checkpoint)
from dm3d_mm.apis.demo_report import kitti_ap_table, summarize_kitti_metrics


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data-root', default='data/synth_kitti')
    p.add_argument('--checkpoint-dir', default='checkpoints')
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--configs', nargs='+', default=list(DEMO_CONFIGS))
    args = p.parse_args()
    tables = []
    for config in args.configs:
        name = config_name(config)
        ckpt = osp.join(args.checkpoint_dir, f'{name}.pth')
        if not osp.exists(ckpt):
            print(f'[demo] {ckpt} missing: training it first')
            train_demo_checkpoint(config, args.data_root, args.checkpoint_dir)
        metrics = evaluate_checkpoint(config, ckpt, args.data_root,
                                      osp.join(args.work_dir, name))
        tables.append(f'### {name}\n' + kitti_ap_table(summarize_kitti_metrics(metrics)))
    print('\n[demo] dense demo detectors on the synthetic val split\n')
    print('\n\n'.join(tables))


if __name__ == '__main__':
    main()
