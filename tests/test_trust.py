"""What a pruning promises about its budget: over budget is an error unless asked for (and
then the report's first line says so), the budget names its reference, and the report flags a
measured distortion far above the predicted one."""

import os.path as osp

import pytest
import torch
from conftest import REPO

import dm3d_mm  # noqa: F401


def _result(**kw):
    from dm3d_mm.pruning.result import LayerResult, PruneResult
    layers = [LayerResult('neck.a', 'neck', 10, 0.5, 2e9, 1e9, 0.5),
              LayerResult('neck.b', 'neck', 10, 0.5, 2e9, 1e9, 1.5)]
    args = dict(method='dm3d', estimator='fisher', flops_target=0.5, macs_before=4e9,
                macs_after=2e9, floor=0.0, layers=layers, masks={},
                measured_distortion=2.5,
                cost=dict(unit='MACs', before=4e9, after=2e9, budget=2e9,
                          reference='the model with every weight kept', allocations=1))
    args.update(kw)
    return PruneResult(**args)


def test_the_report_starts_with_the_budget_its_reference_and_whether_it_fits():
    from dm3d_mm.pruning.report import markdown_report
    first = markdown_report(_result()).splitlines()[2]
    assert first.startswith('**within budget**: target 0.5 of the model with every weight '
                            'kept (4.0000 GMACs per frame) = a budget of 2.0000 GMACs'), first
    over = _result(fits=False, macs_after=2.2e9,
                   cost=dict(unit='MACs', before=4e9, after=2.2e9, budget=2e9,
                             reference='second_synth-kitti_cpu.py (x.pth)', allocations=4))
    text = markdown_report(over)
    first = text.splitlines()[2]
    assert first.startswith('**OVER BUDGET**: target 0.5 of second_synth-kitti_cpu.py'), first
    assert 'the pruned model 2.2000 GMACs (0.5500 of the reference)' in first
    assert '4 allocations until the count fitted' in text
    seconds = _result(cost=dict(unit='seconds', before=0.05, after=0.02, budget=0.025,
                                reference='the model', allocations=1))
    assert 'budget of 25.00 ms' in markdown_report(seconds).splitlines()[2]


def test_a_measured_distortion_far_above_the_predicted_is_flagged_with_its_factor():
    from dm3d_mm.pruning.report import markdown_report
    ok = _result(measured_distortion=5.9)  # predicted 0.5 + 1.5 = 2: under 3x
    assert ok.predicted_distortion == 2.0 and ok.distortion_gap is None
    assert 'distortion gap' not in markdown_report(ok)
    far = _result(measured_distortion=13.0)
    assert far.distortion_gap == pytest.approx(6.5)
    assert 'the measured distortion is 6.5x the predicted one' in markdown_report(far)
    joint = _result(measured_distortion=49.7, spatial=dict(
        predicted_distortion=7.7, spatial_distortion=3.0, weight_distortion=4.7,
        objective=7.7, combinations=[], largest={}, keep_ratios={}, trained_keep_ratios={}))
    assert joint.distortion_gap == pytest.approx(49.7 / 7.7)
    assert 'is 6.5x the predicted' in markdown_report(joint)


ADA3D = 'second_synth-kitti_cpu_ada3d'


@pytest.fixture(scope='module')
def ada3d(synth_root):
    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.pruning.calib_frames import calibration_batches
    cfg = load_config(osp.join(REPO, 'configs/demo', ADA3D + '.py'), data_root=synth_root)
    batches = calibration_batches(cfg, 2, 'train')
    return cfg, batches, lambda: build_detector(cfg, osp.join(REPO, 'checkpoints',
                                                              ADA3D + '.pth'), 'cpu')


def test_a_recount_that_misses_the_budget_is_an_error_unless_asked(synth_root):
    """The pruned model as it runs costs more than every allocation's prediction (a cost
    piece with an overhead): after the re-allocations, OverBudget in one line (the closest
    model's cost and the budget) and the model left as it came; allow_over_budget returns
    the closest model, flagged. Without the overhead the same pruning fits."""
    import cost_pieces  # noqa: F401  (registers 'flops_with_overhead')

    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.errors import OverBudget
    from dm3d_mm.pruning import DM3DPruner
    from dm3d_mm.pruning.calib_frames import calibration_batches
    cfg = load_config(osp.join(REPO, 'configs/demo/second_synth-kitti_cpu.py'),
                      data_root=synth_root)
    batches = calibration_batches(cfg, 2, 'train')

    def build():
        return build_detector(cfg, osp.join(REPO, 'checkpoints/second_synth-kitti_cpu.pth'),
                              'cpu')
    kw = dict(num_ratios=8, progress=False, cost='flops_with_overhead')
    model = build()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(OverBudget, match=r'after 4 allocation\(s\) no pruned model fits: '
                                         r'the closest counts .* over the budget') as err:
        DM3DPruner(0.5, **kw).prune(model, batches)
    assert '\n' not in str(err.value)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    over = DM3DPruner(0.5, allow_over_budget=True, **kw).prune(build(), batches)
    assert not over.fits and over.info()['fits'] is False
    assert over.cost['after'] > over.cost['budget'] and over.cost['allocations'] == 4
    # the closest is the least costly attempt: the model counts what the report says
    assert over.cost['after'] == pytest.approx(over.macs_after + 0.5 * over.macs_before)
    fitted = DM3DPruner(0.5, num_ratios=8, progress=False).prune(build(), batches)
    assert fitted.fits and fitted.macs_after <= 0.5 * fitted.macs_before * (1 + 1e-9)


def test_a_reference_makes_the_target_a_fraction_of_another_detector(ada3d):
    """reference=dict(name, gmacs): the budget is flops_target x the reference's GMACs,
    stated with it on the report's first line."""
    from dm3d_mm.pruning import DM3DPruner
    from dm3d_mm.pruning.report import markdown_report
    cfg, batches, build = ada3d
    ref = dict(name='dense SECOND', gmacs=2.0)
    res = DM3DPruner(0.1, num_ratios=8, progress=False, reference=ref).prune(build(), batches)
    assert res.cost['budget'] == pytest.approx(0.2e9) and res.macs_before == 2e9
    assert res.macs_after <= 0.2e9 * (1 + 1e-9) and res.achieved_ratio <= 0.1 * (1 + 1e-9)
    first = markdown_report(res).splitlines()[2]
    assert 'target 0.1 of dense SECOND (2.0000 GMACs per frame)' in first
    from dm3d_mm.errors import UserError
    with pytest.raises(UserError, match='reference'):
        DM3DPruner(0.1, reference=dict(name='x'))
    with pytest.raises(UserError, match="needs cost='flops'"):
        DM3DPruner(0.1, reference=ref, cost='latency')


@pytest.mark.parametrize('knob,value', [('num_buckets', 0), ('num_projections', 0),
                                        ('num_ratios', 0), ('recount_attempts', 0),
                                        ('num_buckets', 2.5), ('seed', -1)])
def test_every_numeric_knob_is_checked_at_construction(knob, value):
    from dm3d_mm.errors import UserError
    from dm3d_mm.pruning import DM3DPruner
    with pytest.raises(UserError, match=knob):
        DM3DPruner(0.5, **{knob: value})
