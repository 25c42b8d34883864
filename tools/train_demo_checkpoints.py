"""Re-train the shipped CPU demo checkpoints on the synthetic benchmark.

Each demo config (``DEMO_CONFIGS`` in ``dm3d_mm/apis/demo.py``) is trained with mmengine's
Runner at seed 0 (``--seed``) and evaluated on the val split; the result is
checkpoints/<config>.pth (weights and meta, no optimizer state, a few MB) and
checkpoints/<config>.json (training time, per-class AP). A checkpoint a config starts from
or distils from is trained first where it is missing (the Ada3D CenterPoint's teacher, its
fair control ``configs/demo/studies/*_ada3d_control.py``, into
work_dirs/demo_checkpoints/teachers/). Then the demo's fine-tuned joint checkpoints
(``--joint``, on by default with no configs named; ``DEMO_DETECTORS`` in
``dm3d_mm/studies/demo_summary.py``): the joint cell of ``tools/ablate.py`` is pruned from
the demo's spatial model and fine-tuned (seed 0, with the detector's teacher where it names
one), and its weights, masks and keep ratios are written as
checkpoints/<spatial checkpoint>_joint<percent>_ft.pth.
"""
import argparse
import json
import os
import os.path as osp

import torch
from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint

import dm3d_mm  # noqa: F401
from dm3d_mm.apis.cli import add_debug_arg, run_cli
from dm3d_mm.apis.demo import DEMO_CONFIGS, ensure_demo_checkpoint, train_demo_checkpoint
from dm3d_mm.apis.kitti_summary import kitti_ap_table
from dm3d_mm.studies.ablation import Ablation
from dm3d_mm.studies.cells import Cell
from dm3d_mm.studies.demo_summary import DEMO_DETECTORS, DemoDetector, joint_checkpoint_path


def make_joint_checkpoint(spec: DemoDetector, data_root: str, out_dir: str,
                          work_root: str = 'work_dirs/demo_checkpoints') -> dict:
    """Train the teacher, run the joint cell (KD with it, or plain fine-tuning without
    one), write its weights-only checkpoint."""
    det = spec.detector
    checkpoints = {}
    if spec.teacher:
        checkpoints[f'{det}:teacher'] = ensure_demo_checkpoint(
            spec.teacher, data_root, osp.join(work_root, 'teachers'), work_root)
    abl = Ablation(osp.join(work_root, f'joint_{det}'), data_root, epochs=spec.epochs,
                   calib_frames=spec.calib_frames, seed=0,
                   spatial_grid=spec.spatial_grid or None, checkpoints=checkpoints)
    row = abl.run(Cell(det, spatial=spec.joint_on, budget=spec.budget, joint=True,
                       recovery='kd' if spec.teacher else 'finetune'))
    return ship_joint_checkpoint(abl, row, spec, out_dir, checkpoints)


def ship_joint_checkpoint(abl: Ablation, row: dict, spec: DemoDetector, out_dir: str,
                          teacher: dict) -> dict:
    """Write the fine-tuned joint cell ``row`` of ``abl`` as the shipped checkpoint of
    ``spec`` (weights, masks and keep ratios in its meta; no optimizer state) and its JSON
    summary; returns the summary."""
    _, finetuned = abl.model_files(row['name'])
    state = _load_checkpoint(finetuned, map_location='cpu')
    path = joint_checkpoint_path(spec.detector, spec.joint_on, spec.budget, out_dir)
    tmp = path + '.tmp'
    save_checkpoint(dict(state_dict=state['state_dict'], meta=state.get('meta', {})), tmp)
    os.replace(tmp, path)  # never a half-written checkpoint
    summary = dict(cell=row['name'], checkpoint=path, flops_ratio=row['flops_ratio'],
                   mAP=row['mAP'], metrics_3d=row['ap'], seed=abl.results['_meta'].get('seed'),
                   teacher=teacher, torch=torch.__version__)
    with open(path[:-len('.pth')] + '.json', 'w') as f:
        json.dump(summary, f, indent=1)
    return summary


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('configs', nargs='*', help='demo configs to train (default: all, then '
                   'the joint checkpoints)')
    p.add_argument('--joint', action='store_true',
                   help='(re)make the fine-tuned joint checkpoints (default with no configs)')
    p.add_argument('--data-root', default='data/synth_kitti')
    p.add_argument('--out-dir', default='checkpoints')
    p.add_argument('--seed', type=int, default=0, help="the trainings' randomness.seed")
    add_debug_arg(p)
    args = p.parse_args()
    for config in args.configs or list(DEMO_CONFIGS):
        s = train_demo_checkpoint(config, args.data_root, args.out_dir, seed=args.seed)
        print(f"\n{config}: trained in {s['train_seconds'] / 60:.1f} min -> {s['checkpoint']}")
        print(kitti_ap_table(s['metrics_3d']))
    if args.joint or not args.configs:
        for spec in DEMO_DETECTORS:
            s = make_joint_checkpoint(spec, args.data_root, args.out_dir)
            print(f"\n{s['cell']}: {s['flops_ratio']:.3f} of the dense FLOPs, mAP "
                  f"{s['mAP']:.1f} -> {s['checkpoint']}")


if __name__ == '__main__':
    run_cli(main)
