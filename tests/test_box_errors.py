"""tools/box_errors.py: per-class x/y, z and height errors of matched detections."""
import copy
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import REPO, demo_config
from torch import nn


class ShiftedGroundTruth(nn.Module):
    """A detector double whose detections are the frame's GT boxes moved up by ``dz`` and
    made ``dh`` taller (score 1), to check the matching and the error arithmetic exactly."""

    def __init__(self, dz: float, dh: float, classes):
        super().__init__()
        self.dz, self.dh = dz, dh
        self.dataset_meta = dict(classes=list(classes))

    def test_step(self, batch):
        from mmengine.structures import InstanceData
        out = []
        for sample in batch['data_samples']:
            gt = copy.deepcopy(sample.eval_ann_info['gt_bboxes_3d'])
            gt.tensor[:, 2] += self.dz - self.dh / 2  # bottom z: the centre moves by dz
            gt.tensor[:, 5] += self.dh
            res = copy.copy(sample)
            res.pred_instances_3d = InstanceData(
                bboxes_3d=gt, scores_3d=torch.ones(len(gt)),
                labels_3d=torch.as_tensor(sample.eval_ann_info['gt_labels_3d']))
            out.append(res)
        return out


def test_errors_of_shifted_boxes_are_the_shift(synth_root):
    from dm3d_mm.pruning.calib_frames import calibration_batches
    from dm3d_mm.studies.box_errors import matched_box_errors
    cfg = demo_config('second', synth_root)
    batches = calibration_batches(cfg, 4, 'val')
    n_gt = {}
    for b in batches:
        for label in b['data_samples'][0].eval_ann_info['gt_labels_3d'].tolist():
            name = cfg.class_names[label]
            n_gt[name] = n_gt.get(name, 0) + 1
    errors = matched_box_errors(ShiftedGroundTruth(0.2, -0.1, cfg.class_names), batches)
    assert {k: e['n'] for k, e in errors.items()} == n_gt  # every GT box matched to itself
    for e in errors.values():
        assert e['dxy'] == pytest.approx(0, abs=1e-5)
        assert e['dz'] == pytest.approx(0.2, abs=1e-5)
        assert e['abs_dz'] == pytest.approx(0.2, abs=1e-5)
        assert e['dh'] == pytest.approx(-0.1, abs=1e-5)
    with pytest.raises(ValueError, match='radius'):
        matched_box_errors(ShiftedGroundTruth(0, 0, cfg.class_names), batches, radius=0)


def test_box_errors_tool_on_the_shipped_second(synth_root):
    """The real demo SECOND places its matched boxes within a few decimetres, and a bad
    argument is a one-line error."""
    ckpt = osp.join(REPO, 'checkpoints/second_synth-kitti_cpu.pth')
    cmd = [sys.executable, osp.join(REPO, 'tools/box_errors.py'),
           osp.join(REPO, 'configs/demo/second_synth-kitti_cpu.py'), ckpt,
           '--frames', '2', '--data-root', synth_root]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [r.split('|') for r in out.stdout.splitlines() if r.startswith('| Car | ')]
    assert rows and int(rows[0][2]) > 0 and abs(float(rows[0][4])) < 0.3
    bad = subprocess.run(cmd + ['--radius', '-1'], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith('error: radius')
