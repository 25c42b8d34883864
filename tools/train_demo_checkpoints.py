"""Re-train the shipped CPU demo checkpoints on the synthetic benchmark.

Trains each demo config with mmengine's Runner, evaluates it on the val split, and writes
checkpoints/<config>.pth (weights + meta only, no optimizer state) and a JSON with the
training time and per-class AP. Example: python tools/train_demo_checkpoints.py
"""
import argparse
import json
import os
import os.path as osp
import time

import torch
from mmengine.runner import Runner

import dm3d_mm  # noqa: F401
from dm3d_mm.apis import load_config
from dm3d_mm.apis.demo_report import kitti_ap_table, summarize_kitti_metrics

DEMOS = ['configs/demo/second_synth-kitti_cpu.py',
         'configs/demo/pointpillars_synth-kitti_cpu.py']


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('configs', nargs='*', default=DEMOS)
    p.add_argument('--data-root', default='data/synth_kitti')
    p.add_argument('--out-dir', default='checkpoints')
    p.add_argument('--work-root', default='work_dirs/demo_checkpoints')
    return p.parse_args()


def main():
    args = parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for config in args.configs:
        name = osp.splitext(osp.basename(config))[0]
        cfg = load_config(config, work_dir=osp.join(args.work_root, name),
                          data_root=args.data_root)
        cfg.train_cfg.val_interval = cfg.train_cfg.max_epochs + 1  # evaluate once, below
        runner = Runner.from_cfg(cfg)
        t0 = time.time()
        runner.train()
        train_s = time.time() - t0
        metrics = runner.test()
        ckpt = osp.join(args.out_dir, f'{name}.pth')
        meta = dict(config=config, train_seconds=round(train_s, 1),
                    epochs=cfg.train_cfg.max_epochs, torch=torch.__version__)
        tmp = ckpt + '.tmp'
        torch.save(dict(state_dict=runner.model.state_dict(), meta=meta), tmp)
        os.replace(tmp, ckpt)  # never leave a half-written checkpoint behind
        summary = dict(meta, metrics=summarize_kitti_metrics(metrics))
        with open(osp.join(args.out_dir, f'{name}.json'), 'w') as f:
            json.dump(summary, f, indent=1)
        print(f'\n{name}: trained in {train_s / 60:.1f} min -> {ckpt}')
        print(kitti_ap_table(summary['metrics']))


if __name__ == '__main__':
    main()
