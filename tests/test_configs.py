"""Every shipped config parses (with mmdet3d's own bases), builds its model, its pruner and
its hooks, and inherits what it claims to: variants -> their fine-tune base -> mmdet3d's
config + the shared fine-tune schedule."""
import glob
import os.path as osp
import re

import pytest
from conftest import REPO

CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '*', '*.py'))
                 + glob.glob(osp.join(REPO, 'configs', 'demo', 'studies', '*.py')))
PAPER = sorted(glob.glob(osp.join(REPO, 'configs', 'dm3d', '*.py')))
SCHEDULE = '../_base_/schedules/dm3d_finetune.py'


def _bases(path):
    from mmengine.config import Config
    return Config._get_base_files(path)


def _chain(path):
    """The local base files of ``path``, nearest first (mmdet3d:: bases end the chain)."""
    out, todo = [], [path]
    while todo:
        p = todo.pop(0)
        for b in _bases(p):
            if b.startswith('mmdet3d::'):
                out.append(b)
            else:
                full = osp.normpath(osp.join(osp.dirname(p), b))
                out.append(full)
                todo.append(full)
    return out


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_config_parses_and_builds(path):
    from mmdet3d.registry import MODELS
    from mmengine.registry import HOOKS

    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.prune import build_pruner
    from dm3d_mm.hooks import DM3DPruningHook
    cfg = load_config(path)
    assert 'dm3d_mm' in cfg.custom_imports['imports']
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    name = osp.basename(path)
    target = re.search(r'dm3d(\d+)', name)
    if target:  # the file name states the FLOPs target its pruner is built with, in percent
        pruner = build_pruner(cfg)
        assert pruner.flops_target == pytest.approx(int(target.group(1)) / 100, abs=0.005)
        hooks = [HOOKS.build(h) for h in cfg.custom_hooks]
        assert any(isinstance(h, DM3DPruningHook) for h in hooks)
    else:
        assert 'pruning' not in cfg
    enc = cfg.model.get('middle_encoder', cfg.model.get('pts_middle_encoder', {}))
    if 'spss' in name:
        assert enc['type'] == 'SPSSSparseEncoder' and enc['prune_ratios'] == 0.5


@pytest.mark.parametrize('path', [p for p in PAPER if p.endswith('_finetune.py')],
                         ids=osp.basename)
def test_finetune_bases_share_the_schedule_over_mmdet3d_configs(path):
    from dm3d_mm.apis import load_config
    bases = _bases(path)
    assert len(bases) == 2 and bases[0].startswith('mmdet3d::') and bases[1] == SCHEDULE
    cfg = load_config(path)
    ours = load_config(osp.join(REPO, 'configs/_base_/schedules/dm3d_finetune.py'))
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'AdamW' and opt.weight_decay == 0.01 and opt.lr == cfg.finetune_lr
    assert cfg.optim_wrapper.clip_grad == ours.dm3d_finetune_optim_wrapper.clip_grad
    sched, = cfg.param_scheduler  # mmdet3d's cyclic schedule is replaced, not merged
    assert sched.type == 'CosineAnnealingLR' and sched.eta_min_ratio == 0.01
    assert sched.T_max == sched.end == cfg.train_cfg.max_epochs == cfg.finetune_epochs


# spatial-only variants train from scratch on mmdet3d's own schedule (as SPS-Conv trains),
# as does Ada3D's first step
FROM_SCRATCH = [p for p in PAPER if p.endswith(('_spss50.py', '_ada3d_stage1.py'))]
ADA3D_STEPS = [p for p in PAPER if '_ada3d' in p and p not in FROM_SCRATCH]


@pytest.mark.parametrize('path', FROM_SCRATCH, ids=osp.basename)
def test_spatial_variants_train_from_scratch_on_mmdet3ds_schedule(path):
    from dm3d_mm.apis import load_config
    bases = _bases(path)
    assert bases[0].startswith('mmdet3d::'), bases
    assert all(b.startswith('../_base_/models/') for b in bases[1:]), bases  # model parts
    cfg, base = load_config(path), load_config(bases[0])

    def unscoped(node):  # mmengine marks dicts inherited from another package's base
        if isinstance(node, dict):
            return {k: unscoped(v) for k, v in node.items() if k != '_scope_'}
        if isinstance(node, (list, tuple)):
            return [unscoped(v) for v in node]
        return node
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg', 'train_dataloader'):
        assert unscoped(cfg[key]) == unscoped(base[key]), key
    assert not cfg.get('load_from') and 'pruning' not in cfg
    enc = cfg.model.get('middle_encoder') or cfg.model.get('pts_middle_encoder')
    if '_spss50' in path:
        assert enc.type == 'SPSSSparseEncoder' and enc.gate and enc.passthrough == 'block'
    else:  # Ada3D's step 1: its 2D parts, no dropping yet
        backbone = cfg.model.get('backbone') or cfg.model.get('pts_backbone')
        assert enc.type == 'SparseEncoder' and backbone.type == 'SparseBEVSECOND'


@pytest.mark.parametrize('path', ADA3D_STEPS, ids=osp.basename)
def test_ada3d_steps_train_on_their_detectors_finetune_base(path):
    """Ada3D's steps 2 (the predictor alone) and 3 (detector and predictor) on a paper
    detector: the detector's fine-tune base schedule, step 1's 2D parts and head keys, and
    the dropping of configs/_base_/models/ada3d.py."""
    from mmdet3d.registry import MODELS

    from dm3d_mm.apis import load_config
    name = osp.basename(path)
    detector = name.split('_ada3d')[0]
    cfg = load_config(path)
    base = load_config(osp.join(REPO, 'configs/dm3d', detector + '_finetune.py'))
    stage1 = load_config(osp.join(REPO, 'configs/dm3d', detector + '_ada3d_stage1.py'))
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg', 'train_dataloader'):
        assert cfg[key] == base[key], key
    assert cfg.model.train_predictor_only == name.endswith('_stage2.py')
    prefix = 'pts_' if 'pts_middle_encoder' in cfg.model else ''
    ada3d = load_config(osp.join(REPO, 'configs/_base_/models/ada3d.py'))
    assert cfg.model[prefix + 'middle_encoder'].keep_ratios == ada3d.ada3d_encoder.keep_ratios
    assert cfg.model[prefix + 'backbone'] == stage1.model[prefix + 'backbone']
    # step 1's checkpoint loads into step 2 (the predictor is new), step 2's into step 3
    keys = set(MODELS.build(stage1.model).state_dict())
    ours = set(MODELS.build(cfg.model).state_dict())
    assert keys <= ours and all('predictor' in k for k in ours - keys)


@pytest.mark.parametrize('path', [p for p in PAPER if not p.endswith('_finetune.py')
                                  and p not in FROM_SCRATCH + ADA3D_STEPS],
                         ids=osp.basename)
def test_paper_variants_inherit_their_detectors_finetune_base(path):
    from dm3d_mm.apis import load_config
    detector = osp.basename(path).split('_')[0]
    chain = _chain(path)
    ft = [c for c in chain if c.endswith('_finetune.py') and '_base_' not in c]
    assert len(ft) == 1 and osp.basename(ft[0]).startswith(detector + '_'), chain
    cfg, base = load_config(path), load_config(ft[0])
    # the schedule and the detector come from the base; only pruning / spatial parts differ
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg', 'train_dataloader'):
        assert cfg[key] == base[key], key
    assert cfg.model.type == base.model.type
    heads = [k for k in ('bbox_head', 'pts_bbox_head', 'rpn_head') if k in base.model]
    assert heads and all(cfg.model[k] == base.model[k] for k in heads)


@pytest.mark.parametrize('detector,variant', [
    ('second', ''), ('centerpoint', ''), ('centerpoint', 'studies/_joint12')])
def test_ada3d_fair_control_trains_on_ada3ds_joint_schedule(detector, variant):
    """The dense control of an Ada3D demo model (configs/demo/studies/*_ada3d*_control.py)
    trains the dense detector from its dense checkpoint on exactly the optimiser, schedule
    and length of Ada3D's joint step, norm statistics updating (no freezing hook)."""
    from dm3d_mm.apis import load_config
    demo = osp.join(REPO, 'configs', 'demo')
    folder, _, suffix = variant.rpartition('/')  # a study variant's config is in studies/
    control = load_config(osp.join(demo, 'studies',
                                   f'{detector}_synth-kitti_cpu_ada3d{suffix}_control.py'))
    ada3d = load_config(osp.join(demo, folder, f'{detector}_synth-kitti_cpu_ada3d{suffix}.py'))
    dense = load_config(osp.join(demo, f'{detector}_synth-kitti_cpu.py'))
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg', 'train_dataloader'):
        assert control[key] == ada3d[key], key
    assert control.model == dense.model
    assert control.load_from == f'checkpoints/{detector}_synth-kitti_cpu.pth'
    assert not control.get('custom_hooks')


def test_centerpoint_ada3d_joint12_changes_only_the_joint_steps_length():
    """studies/centerpoint_synth-kitti_cpu_ada3d_joint12.py is the Ada3D CenterPoint's step 3
    from the same step-2 checkpoint, with the same model, dropping and optimiser, run for the
    Ada3D SECOND's joint-step length."""
    from dm3d_mm.apis import load_config
    demo = osp.join(REPO, 'configs', 'demo')
    six = load_config(osp.join(demo, 'centerpoint_synth-kitti_cpu_ada3d.py'))
    twelve = load_config(osp.join(demo, 'studies', 'centerpoint_synth-kitti_cpu_ada3d_joint12.py'))
    second = load_config(osp.join(demo, 'second_synth-kitti_cpu_ada3d.py'))
    for key in ('model', 'load_from', 'optim_wrapper', 'train_dataloader'):
        assert twelve[key] == six[key], key
    assert six.train_cfg.max_epochs == 6
    assert twelve.train_cfg.max_epochs == second.train_cfg.max_epochs == 12
    assert twelve.param_scheduler[0].T_max == twelve.param_scheduler[0].end == 12
