"""tools/flops.py and the cost model on real mmdet3d detectors."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, demo_config

FULL_CONFIGS = {
    'second': 'mmdet3d::second/second_hv_secfpn_8xb6-80e_kitti-3d-3class.py',
    'pointpillars': 'mmdet3d::pointpillars/pointpillars_hv_secfpn_8xb6-160e_kitti-3d-3class.py',
}


@pytest.fixture(scope='module')
def demo_counter(synth_root):
    from dm3d_mm.apis.flops import count_on_dataset
    from dm3d_mm.apis.model import build_detector
    cfg = demo_config('second', synth_root)
    torch.manual_seed(0)
    model = build_detector(cfg)
    return model, count_on_dataset(model, cfg, frames=2)


def test_cost_model_is_consistent_with_counter(demo_counter):
    from dm3d_mm.cost.cost_model import CostModel
    model, counter = demo_counter
    assert counter.frames == 2
    names = [n for n in counter.layers if n.startswith(('middle_encoder', 'backbone'))]
    assert any(n.startswith('middle_encoder') for n in names)
    cm = CostModel(counter, names)
    total = counter.total_macs() / 2
    assert cm.total() == pytest.approx(total)
    # halving every prunable layer with random masks: the model total follows exactly
    g = torch.Generator().manual_seed(0)
    masks = {n: (torch.rand(counter.layers[n].module.weight.shape, generator=g) < 0.5)
             for n in names}
    expect = cm.floor + sum(counter.layers[n].macs(masks[n]) for n in names) / 2
    assert cm.total(masks) == pytest.approx(expect)
    assert cm.floor < cm.total(masks) < total
    assert sum(cm.by_part().values()) == pytest.approx(total)
    with pytest.raises(KeyError, match='never ran'):
        CostModel(counter, ['no.such.layer'])


def test_cost_model_needs_frames():
    from dm3d_mm.cost import FlopsCounter
    from dm3d_mm.cost.cost_model import CostModel
    with pytest.raises(ValueError, match='no frames'):
        CostModel(FlopsCounter(torch.nn.Linear(2, 2)), [])


def test_empty_or_broken_point_file_is_a_clear_error(tmp_path):
    from dm3d_mm.apis.flops import check_point_file
    empty = tmp_path / 'empty.bin'
    empty.write_bytes(b'')
    with pytest.raises(ValueError, match='empty point cloud'):
        check_point_file(str(empty))
    odd = tmp_path / 'odd.bin'
    np.zeros(7, np.float32).tofile(odd)
    with pytest.raises(ValueError, match='whole number'):
        check_point_file(str(odd))
    with pytest.raises(FileNotFoundError):
        check_point_file(str(tmp_path / 'missing.bin'))


def _run_tool(args, tmp_path):
    out = tmp_path / 'flops.json'
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools/flops.py'), *args,
                           '--json', str(out)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


@pytest.mark.parametrize('name', ['second', 'pointpillars'])
def test_tool_on_full_mmdet3d_configs_with_points(synth_root, tmp_path, name):
    bin_path = osp.join(synth_root, 'training/velodyne/000000.bin')
    report, stdout = _run_tool([FULL_CONFIGS[name], '--points', bin_path], tmp_path)
    rows = report['layers']
    assert report['frames'] == 1
    total = sum(r['effective_macs'] for r in rows)
    assert total == pytest.approx(report['total_effective_macs'])
    assert sum(r['share'] for r in rows) == pytest.approx(1.0)
    parts = report['parts']
    assert sum(p['effective_macs'] for p in parts.values()) == pytest.approx(total)
    assert {'2D backbone', 'neck', 'head'} <= set(parts)
    if name == 'second':
        assert parts['3D backbone']['effective_macs'] > 0
        sparse = [r for r in rows if r['part'] == '3D backbone']
        # a sparse conv sees far fewer pairs than its dense grid would have
        assert all(r['pairs'] > 0 for r in sparse)
    assert '| **total** |' in stdout
    # nothing is pruned: effective MACs are dense MACs, except that a randomly initialised
    # layer of millions of weights can hold an exact 0.0 (uniform init hits 0 w.p. 2^-24)
    for r in rows:
        if r['weight_density'] == 1.0:
            assert r['effective_macs'] == r['dense_macs'], r['name']
        else:
            assert r['weight_density'] > 0.999 and r['effective_macs'] < r['dense_macs']
    assert report['total_dense_macs'] == pytest.approx(total, rel=1e-4)
    assert 0 < report['nonzero_params'] <= report['params']


def test_tool_on_demo_config_frames(synth_root, tmp_path):
    report, _ = _run_tool([osp.join(REPO, 'configs/demo/second_synth-kitti_cpu.py'),
                           '--data-root', synth_root, '--frames', '2'], tmp_path)
    assert report['frames'] == 2
    assert report['parts']['3D backbone']['effective_macs'] > 0
