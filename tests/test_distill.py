"""Distillation from a frozen dense teacher (DistillationHook): with student = teacher every
distillation loss is 0; the teacher stays in eval mode with no gradient; masks stay exact
through KD iterations under AdamW; the student's checkpoint holds only its own keys and
loads strictly into plain mmdet3d; a teacher whose head does not match is one line naming
both heads."""
import os.path as osp

import pytest
import torch
from conftest import DEMO_CONFIGS, REPO

import dm3d_mm  # noqa: F401

CKPT = {'second': osp.join(REPO, 'checkpoints/second_synth-kitti_cpu.pth'),
        'centerpoint': osp.join(REPO, 'checkpoints/centerpoint_synth-kitti_cpu.pth')}
LOSSES = {'second': [dict(type='anchor_head_response'), dict(type='bev_feature')],
          'centerpoint': [dict(type='center_head_response'),
                          dict(type='bev_feature', region='foreground')]}
PRUNED_KD = osp.join(REPO, 'configs/demo/second_synth-kitti_cpu_dm3d50.py')


def _runner(config, root, work_dir, hooks, epochs=1, optimizer=None, **cfg_updates):
    from mmengine.runner import Runner

    from dm3d_mm.apis import load_config
    cfg = load_config(config, data_root=root, work_dir=str(work_dir))
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.num_workers, loader.persistent_workers = 0, False
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_interval = 100
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.param_scheduler = []
    if optimizer is not None:
        cfg.optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer)
    cfg.custom_hooks = hooks
    cfg.merge_from_dict(cfg_updates)
    return Runner.from_cfg(cfg)


def _hook(runner, cls):
    return next(h for h in runner.hooks if isinstance(h, cls))


@pytest.mark.parametrize('detector', ['second', 'centerpoint'])
def test_with_student_equal_to_teacher_every_distillation_loss_is_zero(detector, tiny_root,
                                                                        tmp_path):
    """The student is the teacher's config and weights, both in eval mode: the loss forward
    gets each distillation term, and each is exactly 0 (the teacher runs on the student's
    own preprocessed inputs). Fails with the teacher left in train mode (its BN statistics
    then follow the batch)."""
    from mmengine.runner import load_checkpoint

    from dm3d_mm.hooks import DistillationHook
    hook = dict(type='DistillationHook', teacher=dict(config=DEMO_CONFIGS[detector],
                                                      checkpoint=CKPT[detector]),
                losses=LOSSES[detector])
    runner = _runner(DEMO_CONFIGS[detector], tiny_root, tmp_path, [hook])
    model = runner.model
    load_checkpoint(model, CKPT[detector], map_location='cpu', logger='silent')
    kd = _hook(runner, DistillationHook)
    kd.before_train(runner)
    model.eval()
    data = model.data_preprocessor(next(iter(runner.train_dataloader)), True)
    with torch.no_grad():
        losses = model(**data, mode='loss')
    terms = {k: float(v) for k, v in losses.items() if k.startswith('loss_kd')}
    want = {'second': {'loss_kd_cls', 'loss_kd_box', 'loss_kd_feature'},
            'centerpoint': {'loss_kd_heatmap', 'loss_kd_box', 'loss_kd_feature'}}[detector]
    assert set(terms) == want
    assert all(v == 0.0 for v in terms.values()), terms
    # ... and not 0 for another student: the same model with its head's weights perturbed
    head = dict(model.named_modules())['bbox_head' if detector == 'second' else
                                       'pts_bbox_head']
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.05 * torch.randn_like(p))
        losses = model(**data, mode='loss')
    assert all(float(losses[k]) > 0 for k in want if k != 'loss_kd_feature')
    kd.after_train(runner)


@pytest.fixture(scope='module')
def kd_finetune(tiny_root, tmp_path_factory):
    """The demo SECOND pruned at the start of training (DM3DPruningHook) and fine-tuned for
    two epochs with AdamW and the dense SECOND as the teacher."""
    work = tmp_path_factory.mktemp('kd_ft')
    hooks = [dict(type='DM3DPruningHook', flops_frames=1),
             dict(type='DistillationHook',
                  teacher=dict(config=DEMO_CONFIGS['second'], checkpoint=CKPT['second']),
                  losses=LOSSES['second'])]
    runner = _runner(PRUNED_KD, tiny_root, work, hooks, epochs=2,
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01),
                     load_from=CKPT['second'], pruning=dict(calib=dict(frames=1)))
    runner.train()
    return runner, work


def test_the_teacher_stays_frozen_in_eval_mode_with_no_gradient(kd_finetune):
    """After KD iterations the teacher is in eval mode, none of its parameters takes or
    holds a gradient and its weights are the checkpoint's; the student's did train, with
    the distillation terms in its loss. Fails when the teacher is built without eval() or
    its parameters left trainable."""
    from dm3d_mm.hooks import DistillationHook
    runner, _ = kd_finetune
    kd = _hook(runner, DistillationHook)
    teacher = kd.teacher
    assert not teacher.training and not any(m.training for m in teacher.modules())
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    dense = torch.load(CKPT['second'], map_location='cpu', weights_only=False)['state_dict']
    assert all(torch.equal(v, dense[k]) for k, v in teacher.state_dict().items())
    assert kd.last and all(v > 0 for v in kd.last.values()), kd.last
    student = runner.model.state_dict()
    assert not torch.equal(student['bbox_head.conv_cls.weight'],
                           dense['bbox_head.conv_cls.weight'])


def test_masks_stay_exact_through_kd_iterations_under_adamw(kd_finetune):
    """Pruned weights stay exactly zero after the KD iterations (AdamW's decoupled weight
    decay and moments included); the kept weights moved."""
    from dm3d_mm.hooks import DM3DPruningHook
    runner, _ = kd_finetune
    masks = _hook(runner, DM3DPruningHook).masks.masks
    modules = dict(runner.model.named_modules())
    assert masks and 0.2 < _hook(runner, DM3DPruningHook).masks.total_sparsity() < 1
    for name, mask in masks.items():
        assert not modules[name].weight[~mask].any(), name


def test_the_student_checkpoint_loads_strictly_into_plain_mmdet3d(kd_finetune):
    """The saved checkpoint holds the student's keys only (no teacher, no adapter) and
    loads with strict=True into the plain mmdet3d model of the student's config."""
    from mmdet3d.registry import MODELS
    from mmengine.registry import init_default_scope

    from dm3d_mm.apis import load_config
    runner, work = kd_finetune
    ckpt = torch.load(osp.join(work, 'epoch_2.pth'), map_location='cpu', weights_only=False)
    state = ckpt['state_dict']
    assert not [k for k in state if k.startswith(('teacher', 'architecture', 'adapter'))]
    init_default_scope('mmdet3d')
    plain = MODELS.build(load_config(PRUNED_KD).model)
    assert set(state) == set(plain.state_dict())
    plain.load_state_dict(state, strict=True)


def test_a_teacher_whose_head_does_not_match_is_one_line_naming_both(tiny_root):
    """A CenterPoint teacher for a SECOND student: one line naming the teacher's config,
    both heads and their layouts; a response loss of the other head family likewise."""
    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.distill import build_distill_losses, build_teacher, check_families
    from dm3d_mm.errors import UserError
    cfg = load_config(DEMO_CONFIGS['second'], data_root=tiny_root)
    student = build_detector(cfg, CKPT['second'], 'cpu')
    with pytest.raises(UserError) as err:
        build_teacher(DEMO_CONFIGS['centerpoint'], CKPT['centerpoint'], student)
    line = str(err.value)
    assert '\n' not in line and 'centerpoint_synth-kitti_cpu.py' in line
    assert 'CenterHead' in line and 'Anchor3DHead' in line
    with pytest.raises(UserError, match='anchor_head_response for an anchor head'):
        check_families(build_distill_losses([dict(type='center_head_response')]), 'anchor',
                       'Anchor3DHead')
    with pytest.raises(UserError, match='teacher checkpoint not found'):
        build_teacher(DEMO_CONFIGS['second'], 'checkpoints/missing.pth', student)


def test_a_slim_student_imitates_through_a_trained_adapter(tiny_root):
    """Features of another width (a slim student): the 1x1 adapter starts at the identity
    on the shared channels, and an Adam step on the imitation loss moves it; the loss is
    the same whichever channels the teacher has beyond the student's."""
    from dm3d_mm.distill import BEVFeatureImitation, KDBatch
    torch.manual_seed(0)
    s = torch.randn(2, 8, 6, 6, requires_grad=True)
    t = torch.cat([s.detach(), torch.randn(2, 4, 6, 6)], 1)
    loss = BEVFeatureImitation()
    kd = KDBatch(None, None, [s], [t], None, None)
    first = loss(kd)['loss_kd_feature']
    adapter = loss.adapters['0']
    assert adapter.weight.shape == (12, 8, 1, 1)
    # identity on the shared channels: only the teacher's extra 4 channels miss
    assert float(first) == pytest.approx(float((t[:, 8:] ** 2).mean() * 4 / 12), rel=1e-5)
    opt = torch.optim.Adam(loss.parameters(), lr=0.1)
    before = adapter.weight.detach().clone()
    first.backward()
    opt.step()
    assert not torch.equal(before, adapter.weight)


def test_peaks_normalise_the_class_term_by_the_teachers_confident_locations():
    """``cls_norm='peaks'``: the summed squared error of the probabilities over the number
    of locations where the teacher exceeds ``min_confidence`` (here 3 of 64), 'mass' over
    the teacher's summed probability; the box term weighs only those locations. Fails with
    the peaks counted over every location or the normalisations swapped."""
    from dm3d_mm.distill.losses import CenterHeadResponse, KDBatch
    torch.manual_seed(0)
    t_heat = torch.full((1, 1, 8, 8), -6.0)
    t_heat[0, 0, 2, 3], t_heat[0, 0, 5, 5], t_heat[0, 0, 7, 1] = 2.0, 0.5, -1.0
    s_heat = torch.randn(1, 1, 8, 8)
    t_reg, s_reg = torch.randn(1, 2, 8, 8), torch.randn(1, 2, 8, 8)
    outs = ([[dict(heatmap=s_heat, reg=s_reg)]], [[dict(heatmap=t_heat, reg=t_reg)]])
    kd = KDBatch(None, None, [], [], *outs)
    sq = ((s_heat.sigmoid() - t_heat.sigmoid()) ** 2).sum()
    peaks = CenterHeadResponse(cls_norm='peaks', min_confidence=0.2)(kd)
    assert int((t_heat.sigmoid() > 0.2).sum()) == 3
    assert peaks['loss_kd_heatmap'].item() == pytest.approx(sq.item() / 3, rel=1e-6)
    mass = CenterHeadResponse(cls_norm='mass', min_confidence=0.2)(kd)
    assert mass['loss_kd_heatmap'].item() == pytest.approx(
        sq.item() / t_heat.sigmoid().sum().clamp(min=1).item(), rel=1e-6)
    conf = t_heat.sigmoid() * (t_heat.sigmoid() > 0.2)
    box = ((s_reg - t_reg).abs() * conf).sum() / (conf.sum() * 2)
    assert peaks['loss_kd_box'].item() == pytest.approx(box.item(), rel=1e-6)
    with pytest.raises(ValueError, match='cls_norm'):
        CenterHeadResponse(cls_norm='pixels')
