"""DM3DPruningHook in a real mmengine Runner: prune at start, exact masks through a short
fine-tune, masks and FLOPs saved in checkpoints and restored on resume."""
import os.path as osp

import pytest
import torch
from conftest import REPO

CONFIG = osp.join(REPO, 'configs/demo/second_synth-kitti_cpu_dm3d50.py')
DENSE = osp.join(REPO, 'checkpoints/second_synth-kitti_cpu.pth')


def _cfg(synth_root, work_dir, epochs, **hook):
    from dm3d_mm.apis import load_config
    cfg = load_config(CONFIG, data_root=synth_root, work_dir=str(work_dir))
    cfg.train_dataloader.batch_size = 2
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_interval = 100  # no validation in the test
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.pruning.calib = dict(frames=2)
    cfg.custom_hooks = [dict(type='DM3DPruningHook', flops_frames=1, **hook)]
    cfg.load_from = DENSE
    return cfg


def _hook(runner):
    from dm3d_mm.hooks import DM3DPruningHook
    return next(h for h in runner.hooks if isinstance(h, DM3DPruningHook))


def _pruned_entries_are_zero(model, masks):
    modules = dict(model.named_modules())
    return all(not modules[n].weight[~m].any() for n, m in masks.items())


@pytest.fixture(scope='module')
def finetuned(synth_root, tmp_path_factory):
    from mmengine.runner import Runner
    work = tmp_path_factory.mktemp('dm3d_ft')
    runner = Runner.from_cfg(_cfg(synth_root, work, epochs=1, freeze_norm_stats=True))
    runner.train()
    return runner, work


def test_finetune_keeps_exact_sparsity(finetuned):
    runner, work = finetuned
    hook = _hook(runner)
    masks = hook.masks.masks
    assert 0.3 < hook.masks.total_sparsity() < 1.0
    assert _pruned_entries_are_zero(runner.model, masks)
    # the unpruned weights did train (the fine-tune is not a no-op)
    dense = torch.load(DENSE, map_location='cpu', weights_only=False)['state_dict']
    name = next(n for n, m in masks.items() if m.any())  # a layer with weights left
    assert not torch.equal(dict(runner.model.named_modules())[name].weight.detach()[masks[name]],
                           dense[name + '.weight'][masks[name]])
    # the logged FLOPs are the pruning's own count of the pruned model, on its frames
    assert hook.flops['ratio'] == hook.info['achieved_ratio'] <= 0.5 * (1 + 1e-9)
    assert hook.flops['gmacs'] == hook.info['macs_after'] / 1e9
    ckpt = torch.load(osp.join(work, 'epoch_1.pth'), map_location='cpu', weights_only=False)
    saved = ckpt['meta']['dm3d']
    assert set(saved['masks']) == set(masks)
    assert all(torch.equal(saved['masks'][n], masks[n].cpu()) for n in masks)
    assert saved['flops']['ratio'] == pytest.approx(hook.flops['ratio'])


def test_freeze_norm_stats_keeps_bn_statistics_but_trains_bn_affine(finetuned):
    """With freeze_norm_stats the BN running statistics stay those of the dense checkpoint
    (the ones the pruning was calibrated with) while the BN scale/shift still train."""
    runner, _ = finetuned
    dense = torch.load(DENSE, map_location='cpu', weights_only=False)['state_dict']
    bns = [(n, m) for n, m in runner.model.named_modules()
           if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(bns) > 10
    for n, m in bns:
        assert torch.equal(m.running_mean, dense[n + '.running_mean']), n
        assert torch.equal(m.running_var, dense[n + '.running_var']), n
    assert any(not torch.equal(m.weight.detach(), dense[n + '.weight']) for n, m in bns)


def test_resume_restores_masks_and_flops(finetuned, synth_root):
    from mmengine.runner import Runner
    first, work = finetuned
    cfg = _cfg(synth_root, work, epochs=2, freeze_norm_stats=True)
    cfg.resume = True
    cfg.load_from = osp.join(work, 'epoch_1.pth')
    runner = Runner.from_cfg(cfg)
    runner.train()
    hook = _hook(runner)
    assert hook.loaded is not None  # masks came from the checkpoint, not a new pruning
    old = _hook(first).masks.masks
    assert all(torch.equal(hook.masks.masks[n].cpu(), old[n].cpu()) for n in old)
    assert _pruned_entries_are_zero(runner.model, hook.masks.masks)
    assert hook.flops['ratio'] == pytest.approx(_hook(first).flops['ratio'], rel=1e-6)
    assert runner.epoch == 2


def test_dense_checkpoint_without_pruning_is_a_clear_error(synth_root, tmp_path):
    from mmengine.runner import Runner

    from dm3d_mm.errors import UserError
    runner = Runner.from_cfg(_cfg(synth_root, tmp_path, epochs=1, prune_on_start=False))
    with pytest.raises(UserError, match='no meta'):
        runner.train()


def test_hook_builds_its_pruner_as_the_tool_does(finetuned):
    """A ``pruner=`` dict goes through the one builder of tools/prune.py: its ``calib`` is
    honoured (PRUNERS.build ignored it: 16 frames) and an unknown key is a one-line error."""
    import copy

    from dm3d_mm.errors import UserError
    from dm3d_mm.hooks import DM3DPruningHook
    from dm3d_mm.hooks.runner_model import detector_of
    runner, _ = finetuned
    model = copy.deepcopy(detector_of(runner))
    hook = DM3DPruningHook(pruner=dict(type='DM3DPruner', flops_target=0.6, num_ratios=8,
                                       progress=False, calib=dict(frames=1)))
    masks, info, _ = hook._prune(runner, model)
    assert hook.calib_used == 1 and info['flops_target'] == 0.6 and info['fits']
    bad = DM3DPruningHook(pruner=dict(type='DM3DPruner', flops_target=0.6, flops_targt=0.6))
    with pytest.raises(UserError, match=r"unknown key\(s\) \['flops_targt'\]"):
        bad._prune(runner, copy.deepcopy(model))


def test_hook_refuses_an_over_budget_checkpoint(finetuned, synth_root, tmp_path):
    """A pruned checkpoint whose record says it does not fit its budget (written by
    ``tools/prune.py --allow-over-budget``) is refused unless the hook allows it."""
    from mmengine.runner import Runner

    from dm3d_mm.errors import OverBudget
    from dm3d_mm.pruning.checkpoint import META_KEY
    runner, work = finetuned
    ckpt = torch.load(osp.join(work, 'epoch_1.pth'), map_location='cpu', weights_only=False)
    ckpt['meta'][META_KEY]['fits'] = False
    over = str(tmp_path / 'over.pth')
    torch.save(ckpt, over)
    cfg = _cfg(synth_root, tmp_path / 'refused', epochs=1)
    cfg.load_from = over
    with pytest.raises(OverBudget, match='over its budget'):
        Runner.from_cfg(cfg).train()
    cfg = _cfg(synth_root, tmp_path / 'allowed', epochs=1, allow_over_budget=True)
    cfg.load_from = over
    allowed = Runner.from_cfg(cfg)
    allowed.train()
    assert allowed.epoch == 1


def test_calibration_frames_follow_one_precedence(finetuned):
    """hook argument > pruning.calib > defaults, counted on the frames really used."""
    import copy

    from mmengine.config import Config

    from dm3d_mm.hooks import DM3DPruningHook
    from dm3d_mm.hooks.runner_model import detector_of
    from dm3d_mm.pruning.calib_frames import resolve_calib
    runner, _ = finetuned
    assert _hook(runner).calib_used == 2  # the config's pruning.calib.frames, not 16
    hook = DM3DPruningHook(calib=dict(frames=1))
    model = copy.deepcopy(detector_of(runner))
    hook._prune(runner, model)
    assert hook.calib_used == 1  # the hook's own argument wins over pruning.calib
    cfg = Config(dict(pruning=dict(calib=dict(frames=64))))
    assert resolve_calib(cfg) == dict(frames=64, split='train')
    assert resolve_calib(cfg, dict(frames=3, split=None)) == dict(frames=3, split='train')
    assert resolve_calib(Config()) == dict(frames=16, split='train')
    with pytest.raises(ValueError, match='unknown key'):
        resolve_calib(cfg, dict(frame=3))
    with pytest.raises(ValueError, match='split'):
        resolve_calib(cfg, dict(split='testing'))
