"""DM3D pruning of a real mmdet3d detector (the demo SECOND) end to end."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import REPO, demo_config

SECOND_CKPT = osp.join(REPO, 'checkpoints/second_synth-kitti_cpu.pth')


@pytest.fixture(scope='module')
def second(synth_root):
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.apis.prune import calibration_batches
    cfg = demo_config('second', synth_root)
    torch.manual_seed(0)
    batches = calibration_batches(cfg, frames=2, split='train')
    return cfg, batches, lambda: build_detector(cfg, SECOND_CKPT)  # trained: real outputs


@pytest.mark.parametrize('method,estimator', [('dm3d', 'fisher'), ('dm3d', 'taylor2'),
                                              ('lamp', None), ('uniform', None),
                                              ('global_magnitude', None), ('erk', None)])
def test_pruning_meets_the_flops_target_exactly_counted(second, method, estimator):
    from dm3d_mm.pruning import DM3DPruner
    cfg, batches, make = second
    torch.manual_seed(0)
    model = make()
    pruner = DM3DPruner(0.5, method=method, estimator=estimator or 'fisher', num_ratios=8,
                        parts=['middle_encoder', 'backbone', 'neck'], progress=False)
    res = pruner.prune(model, batches)
    assert res.macs_after <= 0.5 * res.macs_before
    if estimator != 'taylor2':  # taylor2's signed linear term can favour over-pruning
        assert res.achieved_ratio > 0.49  # the allocation uses the budget
    modules = dict(model.named_modules())
    for name, mask in res.masks.items():
        assert torch.all(modules[name].weight[~mask] == 0)
    # the reported cost equals a fresh count of the pruned model on the same frames
    cm = pruner.cost_model(model, batches, list(res.masks))
    assert cm.total() == pytest.approx(res.macs_after, rel=1e-9)
    assert res.measured_distortion > 0
    assert {lr.part for lr in res.layers} == {'3D backbone', '2D backbone', 'neck'}
    weights = {n: modules[n].weight.detach() for n in res.masks}
    if method == 'global_magnitude':  # one threshold over all layers
        pruned = max(float(w[~res.masks[n]].abs().max()) for n, w in weights.items()
                     if (~res.masks[n]).any())
        kept = min(float(w[res.masks[n]].abs().min()) for n, w in weights.items())
        assert pruned <= kept
    if method == 'erk':  # densities proportional to the ERK shape where below 1
        from dm3d_mm.weight.baselines import erk_density
        scale = [float(res.masks[n].float().mean()) / erk_density(modules[n])
                 for n in res.masks if not res.masks[n].all()]
        assert len(scale) > 2 and max(scale) == pytest.approx(min(scale), rel=0.02)
    if method in ('uniform', 'global_magnitude', 'lamp', 'erk'):  # magnitude within layers
        for n, w in weights.items():
            if (~res.masks[n]).any() and res.masks[n].any():
                assert w[~res.masks[n]].abs().max() <= w[res.masks[n]].abs().min()


def test_density_bounds_and_keep_dense_hold_in_the_allocation(second):
    from dm3d_mm.pruning import DM3DPruner
    cfg, batches, make = second
    model = make()
    keep = 'backbone.blocks.0.0'
    res = DM3DPruner(0.5, num_ratios=16, min_density=0.25, max_density=0.875,
                     keep_dense=[keep], parts=['middle_encoder', 'backbone', 'neck'],
                     progress=False).prune(model, batches)
    assert res.macs_after <= 0.5 * res.macs_before
    density = {n: float(m.float().mean()) for n, m in res.masks.items()}
    assert density.pop(keep) == 1.0
    assert all(0.25 - 1e-9 <= d <= 0.875 + 1e-9 for d in density.values()), density
    # without the bounds the allocation leaves the range (so the bounds did something)
    free = DM3DPruner(0.5, num_ratios=16, parts=['middle_encoder', 'backbone', 'neck'],
                      progress=False).prune(make(), batches)
    free_density = [float(m.float().mean()) for m in free.masks.values()]
    assert min(free_density) < 0.25 or max(free_density) > 0.875
    with pytest.raises(ValueError, match='keep_dense'):
        DM3DPruner(0.5, keep_dense=['bbox_head.nope'], progress=False).prune(make(), batches)


def test_actual_estimator_curves_are_measured_and_weighted_by_lambdas(second):
    """estimator='actual' (Tab. 5): each chosen point of a layer's curve is the measured
    output distortion of pruning that layer alone, lambda_b * D_box + lambda_c * D_cls."""
    from dm3d_mm.pruning import DM3DPruner
    from dm3d_mm.weight.calibration import measured_distortion, reference_outputs
    cfg, batches, make = second
    lambdas = (0.5, 2.0)
    pruner = DM3DPruner(0.2, estimator='actual', parts=['neck'], budget_of='parts',
                        num_ratios=3, lambdas=lambdas, progress=False)
    res = pruner.prune(make(), batches)
    fresh = make()
    outputs = pruner.outputs(fresh)
    ref = reference_outputs(fresh, batches, outputs)
    mods = dict(fresh.named_modules())
    chosen = []
    for name, mask in res.masks.items():
        w0 = mods[name].weight.detach().clone()
        with torch.no_grad():
            mods[name].weight.mul_(mask)
        d_box = measured_distortion(fresh, batches, ref, outputs, (1, 0))
        d_cls = measured_distortion(fresh, batches, ref, outputs, (0, 1))
        with torch.no_grad():
            mods[name].weight.copy_(w0)
        want = lambdas[0] * d_box + lambdas[1] * d_cls
        got = res.curves[name]['chosen_distortion']
        assert got == pytest.approx(want, rel=1e-4, abs=1e-9), name
        chosen.append(got)
    assert max(chosen) > 0 and res.macs_after < res.macs_before


def test_a_part_alone_goes_to_the_budget_of_its_own_flops(second):
    """budget_of='parts' (Tab. 4): the 3D encoder alone to 50 % of its own joint FLOPs, a
    target no fraction of the whole model could express (the 3D part is a small share)."""
    from dm3d_mm.pruning import DM3DPruner
    cfg, batches, make = second
    model = make()
    with pytest.raises(ValueError, match='floor'):
        DM3DPruner(0.5, parts=['middle_encoder'], num_ratios=8, progress=False).prune(
            model, batches)
    model = make()
    res = DM3DPruner(0.5, parts=['middle_encoder'], num_ratios=8, budget_of='parts',
                     progress=False).prune(model, batches)
    part_before = res.macs_before - res.floor
    part_after = res.macs_after - res.floor
    assert 0.3 * part_before < part_after <= 0.5 * part_before
    assert res.masks and all(n.startswith('middle_encoder') for n in res.masks)
    assert res.info()['budget_of'] == 'parts'
    with pytest.raises(ValueError, match='budget_of'):
        DM3DPruner(0.5, budget_of='layers')


def test_bad_targets_and_names_are_clear_errors(second):
    from dm3d_mm.pruning import DM3DPruner
    cfg, batches, make = second
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match='flops_target'):
            DM3DPruner(bad)
    with pytest.raises(ValueError, match='floor'):
        DM3DPruner(0.05, parts=['neck'], progress=False).prune(make(), batches)
    with pytest.raises(ValueError, match='unknown part'):
        DM3DPruner(0.5, parts=['backbone3d'], progress=False).prune(make(), batches)
    with pytest.raises(ValueError, match='matches no prunable layer'):
        DM3DPruner(0.5, include=['backbone.nope*'], progress=False).prune(make(), batches)
    with pytest.raises(ValueError, match='unknown method'):
        DM3DPruner(0.5, method='random')
    # a constraint a baseline cannot honour is an error naming it, not silently dropped
    for method in ('uniform', 'lamp', 'global_magnitude', 'erk'):
        for kw, word in ((dict(min_density=0.1), 'min_density'),
                         (dict(max_density=0.9), 'max_density'),
                         (dict(keep_dense=['neck.deblocks.0.0']), 'keep_dense')):
            with pytest.raises(ValueError, match=f"{method}.*does not honour {word}"):
                DM3DPruner(0.5, method=method, **kw)


def test_head_output_convs_only_when_asked(second):
    from dm3d_mm.weight import find_prunable_layers
    _, _, make = second
    model = make()
    default = find_prunable_layers(model, parts=['bbox_head'], include_head_outputs=True)
    assert {'bbox_head.conv_cls', 'bbox_head.conv_reg'} <= set(default)
    with pytest.raises(ValueError, match='no prunable layer'):
        find_prunable_layers(model, parts=['bbox_head'])


PLAIN_LOAD = r'''
import sys, torch
from mmengine.config import Config
from mmdet3d.apis import init_model, inference_detector
assert 'dm3d_mm' not in sys.modules
cfg = Config.fromfile(sys.argv[1], import_custom_modules=False)
cfg.pop('custom_imports')
model = init_model(cfg, sys.argv[2], device='cpu')
assert 'dm3d_mm' not in sys.modules
ckpt = torch.load(sys.argv[2], map_location='cpu')  # safe (weights_only) load works too
masks = ckpt['meta']['dm3d']['masks']
mods = dict(model.named_modules())
zeros = sum(int((mods[n].weight[~m] == 0).sum()) for n, m in masks.items())
pruned = sum(int((~m).sum()) for m in masks.values())
assert zeros == pruned > 0, (zeros, pruned)
res, _ = inference_detector(model, sys.argv[3])
print('OK', pruned, len(res.pred_instances_3d))
'''


def test_prune_tool_writes_checkpoint_that_plain_mmdet3d_loads(synth_root, tmp_path):
    if not osp.exists(SECOND_CKPT):
        pytest.fail(f'shipped checkpoint missing: {SECOND_CKPT}')
    work = tmp_path / 'pruned'
    cmd = [sys.executable, osp.join(REPO, 'tools/prune.py'),
           osp.join(REPO, 'configs/demo/second_synth-kitti_cpu.py'), '--checkpoint',
           SECOND_CKPT, '--flops-target', '0.5', '--num-ratios', '8', '--calib-frames', '2',
           '--data-root', synth_root, '--work-dir', str(work)]
    proc = subprocess.run(cmd + ['--eval'], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for f in ('pruned.pth', 'prune_report.json', 'prune_report.md', 'layer_sparsity.png'):
        assert (work / f).exists(), f
    assert 'achieved' in (work / 'prune_report.md').read_text()
    report = json.loads((work / 'prune_report.json').read_text())
    for tag in ('AP_dense', 'AP_pruned'):  # --eval: KittiMetric on the val split
        assert 0 <= report[tag]['Car']['moderate'] <= 100, tag
    assert report['AP_dense']['Car']['moderate'] > 20  # the trained checkpoint
    env_cmd = [sys.executable, '-c', PLAIN_LOAD,
               osp.join(REPO, 'configs/demo/second_synth-kitti_cpu.py'), str(work / 'pruned.pth'),
               osp.join(synth_root, 'training/velodyne/000000.bin')]
    proc = subprocess.run(env_cmd, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and 'OK' in proc.stdout, proc.stderr[-3000:]
    # refusing to write over the input
    proc = subprocess.run(cmd[:4] + [str(work / 'pruned.pth')] + cmd[5:], capture_output=True,
                          text=True, cwd=REPO)
    assert proc.returncode != 0 and 'input checkpoint' in proc.stderr


def test_confidence_box_weighting_scales_each_anchor_by_its_score(second):
    from dm3d_mm.weight.head_outputs import AnchorHeadOutputs, build_head_outputs
    cfg, batches, build = second
    model = build()
    with torch.no_grad():
        data = model.data_preprocessor(batches[0], training=False)
        cls, box, dirs = model(**data, mode='tensor')
        b_plain, c_plain = build_head_outputs(model, box_weighting='none')(model, batches[0])
        b_conf, c_conf = build_head_outputs(model)(model, batches[0])
    assert torch.equal(c_plain, c_conf)
    n_cls = model.bbox_head.num_classes
    prob = cls[0].sigmoid()
    b, ac, h, w = prob.shape
    conf = prob.reshape(b, ac // n_cls, n_cls, h, w).amax(2)  # (B, A, H, W)
    a = conf.shape[1]
    expect = box[0].reshape(b, a, -1, h, w) * conf.sqrt()[:, :, None]
    assert torch.allclose(b_conf[:, :box[0].numel()], expect.reshape(b, -1), atol=1e-6)
    assert torch.allclose(b_plain[:, :box[0].numel()], box[0].reshape(b, -1))
    with pytest.raises(ValueError, match='box_weighting'):
        AnchorHeadOutputs('sqrt')


def test_channel_floor_is_exact_and_a_target_between_it_and_the_own_conv_bound_is_met(second):
    """With channel granularity a removed channel also frees its consumers' input slices, so
    the lowest reachable cost is below "every pruned conv at its lowest density, inputs
    whole" (what the DP credits); a target in between is reached (the bisection starts from
    a DP budget the DP alone cannot allocate) and meets the budget counted exactly."""
    import re

    from dm3d_mm.pruning import BudgetBelowFloor, DM3DPruner
    cfg, batches, make = second
    kw = dict(parts=['backbone', 'neck'], granularity='channel', min_density=0.5,
              num_ratios=8, progress=False)
    with pytest.raises(BudgetBelowFloor) as err:
        DM3DPruner(0.05, **kw).prune(make(), batches)
    floor = float(re.search(r'\(([\d.]+) of the model', str(err.value)).group(1))
    target = floor + 0.03
    res = DM3DPruner(target, **kw).prune(make(), batches)
    assert res.macs_after <= target * res.macs_before
    own_conv_bound = 1 - 0.5 * sum(lr.macs_before for lr in res.layers) / res.macs_before
    assert target < own_conv_bound - 0.02
