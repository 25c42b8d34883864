"""The FLOPs a pruning reports after pruning are a fresh count of the pruned model (masks and
spatial modules in place) on the calibration frames, not a prediction from the dense pass;
the allocation meets its budget on that count."""
import os.path as osp

import pytest
from conftest import REPO

import dm3d_mm  # noqa: F401

MODELS = {  # name -> (config, checkpoint) of the shipped demo models
    'second': ('second_synth-kitti_cpu', 'second_synth-kitti_cpu'),
    'second_spss50': ('second_synth-kitti_cpu_spss50', 'second_synth-kitti_cpu_spss50'),
    'second_ada3d': ('second_synth-kitti_cpu_ada3d', 'second_synth-kitti_cpu_ada3d'),
    'centerpoint': ('centerpoint_synth-kitti_cpu', 'centerpoint_synth-kitti_cpu'),
}


@pytest.mark.parametrize('name', sorted(MODELS))
def test_reported_flops_after_pruning_equal_a_fresh_count(name, synth_root):
    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.cost import count_flops
    from dm3d_mm.cost.cost_model import CostModel
    from dm3d_mm.pruning import DM3DPruner
    from dm3d_mm.pruning.calib_frames import calibration_batches
    from dm3d_mm.weight.head_outputs import build_head_outputs
    config, ckpt = MODELS[name]
    cfg = load_config(osp.join(REPO, 'configs/demo', config + '.py'), data_root=synth_root)
    model = build_detector(cfg, osp.join(REPO, 'checkpoints', ckpt + '.pth'), 'cpu')
    batches = calibration_batches(cfg, 2, 'train')
    res = DM3DPruner(0.4, num_ratios=8, progress=False).prune(model, batches)
    fresh = count_flops(model, batches, build_head_outputs(model))
    counted = CostModel(fresh, [lr.name for lr in res.layers]).total(res.masks)
    assert res.macs_after == pytest.approx(counted, rel=1e-12, abs=0)
    assert res.macs_after <= 0.4 * res.macs_before * (1 + 1e-9)  # met on the count
    info = res.info()
    assert info['macs_after'] == res.macs_after
    assert info['macs_after_predicted'] == res.macs_after_predicted
    if name == 'second':  # nothing upstream changes its sites: the prediction is exact
        assert res.macs_after == pytest.approx(res.macs_after_predicted, rel=1e-12)
    # the recount's stopping rule: an allocation stands when its count is its prediction,
    # or when it fits within the tolerance below the budget; otherwise the pruner allocated
    # again (all four attempts at most). The Ada3D SECOND counts 12 % under its first
    # prediction here: one allocation would stop at 0.35 of dense for a budget of 0.4.
    exact = abs(res.macs_after - res.macs_after_predicted) <= 1e-9 * res.macs_before
    assert exact or res.macs_after >= 0.4 * (1 - 0.005) * res.macs_before or \
        res.cost['allocations'] == 4, (name, res.achieved_ratio, res.cost['allocations'])


def test_repruning_a_pruned_model_measures_against_dense(synth_root):
    """A target is a fraction of the dense model's FLOPs, also when the weights already hold
    a pruning's zeros (before: 0.5 of the pruned model, i.e. 0.25 of dense)."""
    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.pruning import DM3DPruner
    from dm3d_mm.pruning.calib_frames import calibration_batches
    cfg = load_config(osp.join(REPO, 'configs/demo/second_synth-kitti_cpu.py'),
                      data_root=synth_root)
    model = build_detector(cfg, osp.join(REPO, 'checkpoints/second_synth-kitti_cpu.pth'), 'cpu')
    batches = calibration_batches(cfg, 2, 'train')
    first = DM3DPruner(0.5, num_ratios=8, progress=False).prune(model, batches)
    again = DM3DPruner(0.4, num_ratios=8, progress=False).prune(model, batches)
    assert again.macs_before == pytest.approx(first.macs_before, rel=1e-12)
    assert 0.39 <= again.achieved_ratio <= 0.4 * (1 + 1e-9)
    assert all(lr.macs_before == pytest.approx(lf.macs_before, rel=1e-12)
               for lr, lf in zip(again.layers, first.layers))


def test_channel_pruning_on_a_fixed_geometry_counts_what_it_predicted(synth_root):
    """Channel masks also zero norms and the consumers' input slices: predicted before the
    masks go into the weights, the prediction equals the fresh count exactly (computed after,
    it once read 0.589 for a model that counts 0.498), and one allocation stands."""
    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.cost import count_flops
    from dm3d_mm.cost.cost_model import CostModel
    from dm3d_mm.pruning import DM3DPruner
    from dm3d_mm.pruning.calib_frames import calibration_batches
    from dm3d_mm.weight.head_outputs import build_head_outputs
    cfg = load_config(osp.join(REPO, 'configs/demo/second_synth-kitti_cpu.py'),
                      data_root=synth_root)
    model = build_detector(cfg, osp.join(REPO, 'checkpoints/second_synth-kitti_cpu.pth'), 'cpu')
    batches = calibration_batches(cfg, 2, 'train')
    res = DM3DPruner(0.5, num_ratios=8, progress=False,
                     granularity=dict(type='channel', round_to=8)).prune(model, batches)
    fresh = count_flops(model, batches, build_head_outputs(model))
    counted = CostModel(fresh, [lr.name for lr in res.layers]).total(res.masks)
    assert res.macs_after == pytest.approx(counted, rel=1e-12)
    assert res.macs_after == pytest.approx(res.macs_after_predicted, rel=1e-12)
    assert 0.4 * res.macs_before < res.macs_after <= 0.5 * res.macs_before
    assert 'recount' in res.timings
