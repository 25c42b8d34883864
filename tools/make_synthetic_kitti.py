"""Generate the synthetic LiDAR benchmark in the KITTI layout (deterministic per seed).

Example: python tools/make_synthetic_kitti.py --out data/synth_kitti --seed 0
"""
import argparse
import json
import os.path as osp
import time

from dm3d_mm.apis.cli import add_debug_arg, run_cli
from dm3d_mm.datasets import SyntheticKittiConfig, generate
from dm3d_mm.errors import UserError


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', default='data/synth_kitti', help='output data root')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--num-train', type=int, default=300)
    p.add_argument('--num-val', type=int, default=100)
    p.add_argument('--workers', type=int, default=None, help='processes (default: cores)')
    p.add_argument('--force', action='store_true', help='regenerate even if complete')
    add_debug_arg(p)
    return p.parse_args()


def main():
    args = parse_args()
    if args.num_train < 1 or args.num_val < 1:
        raise UserError('--num-train and --num-val must be at least 1')
    stamp = osp.join(args.out, 'synthetic_kitti.json')
    wanted = dict(seed=args.seed, num_train=args.num_train, num_val=args.num_val)
    if osp.exists(stamp) and not args.force:
        with open(stamp) as f:
            done = json.load(f)
        if {k: done.get(k) for k in wanted} == wanted:
            print(f'{args.out} is already generated with {wanted}; use --force to redo')
            return
    t0 = time.time()
    # a progress bar only on a terminal: in a log its every update is a line
    stats = generate(args.out, SyntheticKittiConfig(**wanted), workers=args.workers,
                     progress=True)
    stats.update(wanted, seconds=round(time.time() - t0, 1))
    with open(stamp, 'w') as f:
        json.dump(stats, f, indent=1)
    print(f'\nwrote {args.out}: {json.dumps(stats)}')


if __name__ == '__main__':
    run_cli(main)
