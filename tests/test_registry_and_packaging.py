"""Scoped registries build without scope warnings inside an mmdet3d Runner's scope; configs
ship inside the package; the torch.load fix applies only where mmengine needs it."""
import logging
import os.path as osp
import subprocess
import sys
import zipfile

import pytest
from conftest import REPO


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_pruner_and_extractor_build_in_mmdet3d_scope_without_warnings():
    from mmengine.logging import MMLogger
    from mmengine.registry import DefaultScope

    from dm3d_mm.registry import HEAD_OUTPUTS, PRUNERS
    logger = MMLogger.get_current_instance()
    rec = _Records()
    logger.addHandler(rec)
    try:
        with DefaultScope.overwrite_default_scope('mmdet3d'):
            pruner = PRUNERS.build(dict(type='DM3DPruner', flops_target=0.4))
            ext = HEAD_OUTPUTS.build(dict(type='CenterHeadOutputs', box_weighting='none'))
    finally:
        logger.removeHandler(rec)
    assert pruner.flops_target == 0.4 and ext.box_weighting == 'none'
    assert not [m for m in rec.messages if 'Failed to search registry' in m], rec.messages
    with pytest.raises(KeyError, match='NoSuchPruner'):
        PRUNERS.build(dict(type='NoSuchPruner', flops_target=0.4))


def test_unknown_model_family_is_a_clear_error():
    import torch

    from dm3d_mm.weight.head_outputs import build_head_outputs
    with pytest.raises(TypeError, match='Linear'):
        build_head_outputs(torch.nn.Linear(2, 2))


def test_full_unpickling_only_for_mmengine_before_0_11():
    from dm3d_mm.compat.torch_load import needs_full_unpickling
    assert needs_full_unpickling('2.13.0+cpu', '0.10.7')
    assert not needs_full_unpickling('2.13.0', '0.11.0')
    assert not needs_full_unpickling('2.5.1', '0.10.7')


def test_wheel_ships_the_configs(tmp_path):
    """A wheel built from a copy of the sources (the checkout stays clean) holds the configs."""
    import shutil
    src = tmp_path / 'src'
    for name in ('pyproject.toml', 'README.md'):
        shutil.copy(osp.join(REPO, name), src / name) if src.exists() else (
            src.mkdir(), shutil.copy(osp.join(REPO, name), src / name))
    shutil.copytree(osp.join(REPO, 'configs'), src / 'configs')
    shutil.copytree(osp.join(REPO, 'dm3d_mm'), src / 'dm3d_mm', symlinks=True,
                    ignore=shutil.ignore_patterns('__pycache__', '*.egg-info'))
    out = tmp_path / 'dist'
    proc = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
                           '--no-build-isolation', '-q', '-w', str(out), str(src)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(p for p in out.iterdir() if p.suffix == '.whl')
    names = zipfile.ZipFile(wheel).namelist()
    for cfg in ('dm3d_mm/.mim/configs/demo/second_synth-kitti_cpu.py',
                'dm3d_mm/.mim/configs/dm3d/centerpoint_voxel01_nus_dm3d25.py'):
        assert cfg in names
    assert osp.isfile(osp.join(REPO, 'dm3d_mm/.mim/configs/demo/second_synth-kitti_cpu.py'))


def test_logged_to_captures_python_and_c_level_output(tmp_path, capfd):
    import os

    from dm3d_mm.apis.quiet import logged_to
    log = tmp_path / 'run.log'
    print('before')
    with logged_to(str(log)):
        print('python chatter', flush=True)
        os.write(2, b'c-level warning\n')
    print('after')
    out, err = capfd.readouterr()
    assert 'before' in out and 'after' in out
    assert 'chatter' not in out + err and 'c-level' not in out + err
    text = log.read_text()
    assert 'python chatter' in text and 'c-level warning' in text
