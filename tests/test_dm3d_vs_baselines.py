"""DM3D's allocation against the baselines and its curves against the measured ones, on the
shipped demo SECOND: the property the method claims, not only that it runs."""
import os.path as osp

import numpy as np
from conftest import REPO

import dm3d_mm  # noqa: F401

CONFIG = osp.join(REPO, 'configs/demo/second_synth-kitti_cpu.py')
CKPT = osp.join(REPO, 'checkpoints/second_synth-kitti_cpu.pth')


def _setup(synth_root, frames=4):
    from dm3d_mm.apis import load_config
    from dm3d_mm.pruning.calib_frames import calibration_batches
    cfg = load_config(CONFIG, data_root=synth_root)
    return cfg, calibration_batches(cfg, frames, 'train'), calibration_batches(cfg, 4, 'val')


def _spearman(a, b):
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def test_dm3d_distorts_the_outputs_less_than_uniform_and_lamp_at_equal_flops(synth_root):
    """At a third of the joint FLOPs, the output distortion measured on held-out val frames
    (the same head-output distortion DM3D minimises) is lowest for DM3D's allocation."""
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.pruning import DM3DPruner
    from dm3d_mm.weight.calibration import measured_distortion, reference_outputs
    from dm3d_mm.weight.head_outputs import build_head_outputs
    cfg, calib, held_out = _setup(synth_root, frames=2)
    dense = build_detector(cfg, CKPT, 'cpu')
    outputs = build_head_outputs(dense)
    reference = reference_outputs(dense, held_out, outputs)
    measured = {}
    for method in ('dm3d', 'uniform', 'lamp'):
        model = build_detector(cfg, CKPT, 'cpu')
        res = DM3DPruner(0.33, method=method, num_ratios=8, progress=False).prune(model, calib)
        assert res.macs_after <= 0.33 * res.macs_before * (1 + 1e-9)
        measured[method] = measured_distortion(model, held_out, reference, outputs)
    print(measured)
    assert measured['dm3d'] < measured['uniform']
    assert measured['dm3d'] < measured['lamp']


def test_fisher_curves_rank_like_the_measured_ones(synth_root):
    """Tab. 5: over every (layer, ratio) of the 2D backbone and neck, the Fisher curves rank
    the candidates as the measured ('actual') distortion does."""
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.pruning import DM3DPruner
    cfg, calib, _ = _setup(synth_root, frames=1)
    curves = {}
    for estimator in ('fisher', 'actual'):
        model = build_detector(cfg, CKPT, 'cpu')
        res = DM3DPruner(0.5, estimator=estimator, num_ratios=4, parts=['backbone', 'neck'],
                         progress=False).prune(model, calib)
        curves[estimator] = res.curves
    names = sorted(curves['fisher'])
    assert names == sorted(curves['actual'])
    predicted = [d for n in names for d in curves['fisher'][n]['distortion'][1:]]
    actual = [d for n in names for d in curves['actual'][n]['distortion'][1:]]
    rho = _spearman(predicted, actual)
    print(f'Spearman over {len(predicted)} (layer, ratio) candidates: {rho:.3f}')
    assert rho > 0.8
    # and not by the ratios alone: the layers' curves rank against each other too
    at_half = [(curves['fisher'][n]['distortion'][2], curves['actual'][n]['distortion'][2])
               for n in names]
    assert _spearman(*zip(*at_half)) > 0.5
