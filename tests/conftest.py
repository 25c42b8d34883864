"""Shared fixtures: a few synthetic KITTI frames generated once per test run."""
import os
import os.path as osp
import subprocess
import sys

import pytest

if os.environ.get('PYTEST_XDIST_WORKER'):
    # `make test` runs one pytest-xdist worker per core: one compute thread each (and in the
    # tools the tests start), so the workers do not oversubscribe the cores
    os.environ['OMP_NUM_THREADS'] = '1'
    import torch
    torch.set_num_threads(1)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIGS = {
    'second': osp.join(REPO, 'configs/demo/second_synth-kitti_cpu.py'),
    'pointpillars': osp.join(REPO, 'configs/demo/pointpillars_synth-kitti_cpu.py'),
    'centerpoint': osp.join(REPO, 'configs/demo/centerpoint_synth-kitti_cpu.py'),
}


# cfg_options for the few-frame runs of the tests: data loading in the test process
NO_WORKERS = dict(train_dataloader=dict(num_workers=0, persistent_workers=False),
                  val_dataloader=dict(num_workers=0, persistent_workers=False),
                  test_dataloader=dict(num_workers=0, persistent_workers=False))


def make_benchmark(tmp_path_factory, name: str, num_train: int, num_val: int) -> str:
    """A synthetic benchmark (seed 0: the full benchmark's first frames) in a fresh temp
    dir; returns its data root with a trailing slash, as the configs expect."""
    from dm3d_mm.datasets import SyntheticKittiConfig, generate
    root = str(tmp_path_factory.mktemp(name))
    generate(root, SyntheticKittiConfig(num_train=num_train, num_val=num_val, seed=0),
             workers=2, progress=False)
    return root + '/'


@pytest.fixture(scope='session')
def synth_root(tmp_path_factory):
    """A tiny benchmark: val frames 0..7 (the full benchmark's first 8), 6 train frames."""
    return make_benchmark(tmp_path_factory, 'synth_kitti', num_train=6, num_val=8)


def demo_config(name, data_root=None):
    """A demo config, optionally re-pointed at another data root (all data paths)."""
    from dm3d_mm.apis import load_config
    return load_config(DEMO_CONFIGS[name], data_root=data_root)


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    """Two train and two val frames (per test module): every ablation cell evaluates on the
    whole val split."""
    return make_benchmark(tmp_path_factory, 'tiny_kitti', num_train=2, num_val=2)


def run_tool(tool, *args, env=None):
    """Run tools/TOOL with ARGS in the repository (stdout, stderr captured)."""
    return subprocess.run([sys.executable, osp.join(REPO, 'tools', tool), *args],
                          capture_output=True, text=True, cwd=REPO, env=env)


def one_line_error(proc, *words):
    """The one ``error: ...`` line of a tool that exited 2 with no traceback; it holds
    every one of ``words``."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith('error: ')]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]
