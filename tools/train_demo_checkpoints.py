"""Re-train the shipped CPU demo checkpoints on the synthetic benchmark.

Each demo config is trained with mmengine's Runner and evaluated on the val split; the
result is checkpoints/<config>.pth (weights and meta, no optimizer state, a few MB) and
checkpoints/<config>.json (training time, per-class AP).
"""
import argparse

import dm3d_mm  # noqa: F401
from dm3d_mm.apis.cli import add_debug_arg, run_cli
from dm3d_mm.apis.demo import DEMO_CONFIGS, train_demo_checkpoint
from dm3d_mm.apis.kitti_summary import kitti_ap_table


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('configs', nargs='*', default=list(DEMO_CONFIGS))
    p.add_argument('--data-root', default='data/synth_kitti')
    p.add_argument('--out-dir', default='checkpoints')
    add_debug_arg(p)
    args = p.parse_args()
    for config in args.configs:
        s = train_demo_checkpoint(config, args.data_root, args.out_dir)
        print(f"\n{config}: trained in {s['train_seconds'] / 60:.1f} min -> {s['checkpoint']}")
        print(kitti_ap_table(s['metrics_3d']))


if __name__ == '__main__':
    run_cli(main)
