"""Every shipped config parses (with mmdet3d's own bases), builds its model, and builds its
pruner and hooks when it has them."""
import glob
import os.path as osp

import pytest

from conftest import REPO

CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '*', '*.py')))


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_config_parses_and_builds(path):
    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.prune import build_pruner
    from mmdet3d.registry import MODELS
    from mmengine.registry import HOOKS
    cfg = load_config(path)
    assert 'dm3d_mm' in cfg.custom_imports['imports']
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    if 'pruning' in cfg:
        assert 0 < build_pruner(cfg).flops_target <= 1
    for hook in cfg.get('custom_hooks', []):
        HOOKS.build(hook)
    enc = cfg.model.get('middle_encoder', cfg.model.get('pts_middle_encoder', {}))
    if 'spss' in osp.basename(path):
        assert enc['type'] == 'SPSSSparseEncoder'


def test_every_variant_inherits_a_shipped_base():
    names = {osp.basename(p) for p in CONFIGS}
    assert {'second_kitti_dm3d50.py', 'centerpoint_voxel01_nus_spss50_dm3d50.py',
            'centerpoint_voxel0075_nus_dm3d25.py', 'pvrcnn_kitti_dm3d27.py',
            'pointpillars_kitti_dm3d50.py'} <= names
