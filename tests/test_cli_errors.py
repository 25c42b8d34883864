"""User mistakes at the command line: one line ``error: ...`` on stderr, exit status 2, and
nothing written or changed; an out-of-range cloud is a clean zero-voxel count."""
import hashlib
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO
from conftest import one_line_error as _one_line_error
from conftest import run_tool as _run

SECOND = 'configs/demo/second_synth-kitti_cpu.py'
SECOND_CKPT = 'checkpoints/second_synth-kitti_cpu.pth'
PP_CKPT = 'checkpoints/pointpillars_synth-kitti_cpu.pth'


def _sha(path):
    return hashlib.sha256(open(osp.join(REPO, path), 'rb').read()).hexdigest()


@pytest.mark.parametrize('args,words', [
    (['--checkpoint', PP_CKPT], ['does not fit', 'missing', 'unexpected']),
    (['--checkpoint', SECOND_CKPT, '--flops-target', '0'], ['flops_target']),
    (['--checkpoint', SECOND_CKPT, '--flops-target', '1.5'], ['flops_target']),
    (['--checkpoint', SECOND_CKPT, '--flops-target', '0.01', '--parts', 'neck',
      '--calib-frames', '1'], ['floor']),
    (['--checkpoint', SECOND_CKPT, '--parts', 'encoder'], ['unknown part']),
    (['--checkpoint', 'checkpoints/missing.pth'], ['checkpoint not found']),
    (['--checkpoint', SECOND_CKPT, '--cfg-options', 'pruning.flops_targt=0.5'],
     ['pruning config']),
])
def test_prune_tool_user_errors_are_one_line_and_write_nothing(synth_root, tmp_path, args,
                                                               words):
    work = tmp_path / 'out'
    before = {p: _sha(p) for p in (SECOND_CKPT, PP_CKPT)}
    proc = _run('prune.py', SECOND, *args, '--work-dir', str(work), '--data-root', synth_root)
    _one_line_error(proc, *words)
    assert not work.exists() or not os.listdir(work)
    assert before == {p: _sha(p) for p in before}


def test_missing_config_is_one_line(tmp_path):
    proc = _run('prune.py', 'configs/demo/nope.py', '--checkpoint', SECOND_CKPT,
                '--work-dir', str(tmp_path / 'o'))
    _one_line_error(proc, 'config not found')
    proc = _run('flops.py', 'configs/demo/nope.py')
    _one_line_error(proc, 'config not found')


def test_allow_partial_loads_what_fits(synth_root, tmp_path):
    """--allow-partial is the explicit way to prune a checkpoint that does not fit."""
    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.model import build_detector, load_weights
    cfg = load_config(osp.join(REPO, SECOND), data_root=synth_root)
    model = build_detector(cfg, None, 'cpu')
    report = load_weights(model, osp.join(REPO, PP_CKPT), strict=False)
    assert report['missing'] and report['unexpected']
    with pytest.raises(ValueError, match='allow-partial'):
        load_weights(model, osp.join(REPO, PP_CKPT))
    assert not any(load_weights(model, osp.join(REPO, SECOND_CKPT)).values())


@pytest.mark.parametrize('content,words', [
    (b'', ['empty point cloud']),
    (np.zeros(7, np.float32).tobytes(), ['whole number']),
])
def test_flops_tool_bad_point_files(tmp_path, content, words):
    f = tmp_path / 'p.bin'
    f.write_bytes(content)
    out = tmp_path / 'f.json'
    proc = _run('flops.py', SECOND, '--points', str(f), '--json', str(out))
    _one_line_error(proc, *words)
    assert not out.exists()


def test_flops_tool_out_of_range_cloud_counts_zero_voxels(tmp_path):
    pts = np.zeros((500, 4), np.float32)
    pts[:, 0] = -40.0  # behind the sensor: outside [0, 51.2) in x
    f = tmp_path / 'behind.bin'
    pts.tofile(f)
    out = tmp_path / 'f.json'
    proc = _run('flops.py', SECOND, '--checkpoint', SECOND_CKPT, '--points', str(f),
                '--json', str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report['frames'] == 1 and report['total_effective_macs'] == 0
    assert '0 voxels' in proc.stdout + proc.stderr
    assert '500 of 500 points lie behind the sensor' in proc.stdout + proc.stderr


def test_debug_shows_the_traceback(tmp_path):
    proc = _run('prune.py', SECOND, '--checkpoint', SECOND_CKPT, '--flops-target', '0',
                '--work-dir', str(tmp_path / 'o'), '--debug')
    assert proc.returncode != 0 and 'Traceback' in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason='a machine without CUDA')
def test_cuda_device_without_cuda_is_one_line():
    from dm3d_mm.apis.model import resolve_device
    with pytest.raises(ValueError, match="device 'cuda': CUDA is not available"):
        resolve_device('cuda')
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools/flops.py'),
                           osp.join(REPO, 'configs/demo/second_synth-kitti_cpu.py'),
                           '--device', 'cuda', '--frames', '1'],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == ("error: device 'cuda': CUDA is not "
                                                    'available on this machine')


def test_a_broken_sample_names_the_sample_and_the_transform(tiny_root, tmp_path):
    """A point file missing from the test split: `--frames 1` never loads the broken second
    frame (exit 0); `--frames 2` stops with one line naming the sample, its file, the
    transform and the problem."""
    import shutil
    root = tmp_path / 'broken'
    shutil.copytree(tiny_root, root)
    (root / 'training' / 'velodyne_reduced' / '000001.bin').unlink()
    cmd = [sys.executable, osp.join(REPO, 'tools/flops.py'),
           osp.join(REPO, 'configs/demo/second_synth-kitti_cpu.py'), '--device', 'cpu',
           '--data-root', str(root) + '/']
    ok = subprocess.run(cmd + ['--frames', '1'], capture_output=True, text=True, cwd=REPO)
    assert ok.returncode == 0, ok.stderr[-2000:]
    bad = subprocess.run(cmd + ['--frames', '2'], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and 'Traceback' not in bad.stderr
    line = bad.stderr.strip().splitlines()[-1]
    assert line.startswith('error: test sample 1 (') and '000001.bin' in line, line
    assert 'LoadPointsFromFile' in line and 'FileNotFoundError' in line, line


def test_ann_file_names_renamed_infos_and_a_broken_entry_is_named(tiny_root, tmp_path):
    """Info files under other names than the config's (mmdet3d's --extra-tag, its test
    samples' nus_info.pkl): `--ann-file test=FILE` counts on them exactly as on the
    config's own; an entry missing a key is one line naming the file, the entry and the key."""
    import shutil

    from mmengine.fileio import dump, load
    root = tmp_path / 'renamed'
    shutil.copytree(tiny_root, root)
    infos = load(str(root / 'kitti_infos_val.pkl'))
    (root / 'kitti_infos_val.pkl').rename(root / 'my_infos_val.pkl')
    broken = dict(infos, data_list=[dict(d) for d in infos['data_list']])
    del broken['data_list'][1]['lidar_points']
    dump(broken, str(root / 'broken_infos_val.pkl'))
    cmd = [sys.executable, osp.join(REPO, 'tools/flops.py'),
           osp.join(REPO, 'configs/demo/second_synth-kitti_cpu.py'), '--device', 'cpu',
           '--frames', '2', '--data-root', str(root)]
    missing = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert missing.returncode == 2 and 'kitti_infos_val.pkl' in missing.stderr
    out = {}
    for name, extra in (('renamed', ['--ann-file', 'test=my_infos_val.pkl']),
                        ('original', ['--data-root', str(tiny_root)])):
        js = str(tmp_path / f'{name}.json')
        proc = subprocess.run(cmd + extra + ['--json', js], capture_output=True, text=True,
                              cwd=REPO)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out[name] = json.load(open(js))
    assert out['renamed']['frames'] == out['original']['frames'] == 2
    for part, got in out['renamed']['parts'].items():  # the same frames, the same pairs
        want = out['original']['parts'][part]
        assert got['dense_macs'] == want['dense_macs'], part
        # effective MACs skip exact zeros of activations: multi-threaded float sums may
        # make a value exactly zero in one run and not in another
        assert got['effective_macs'] == pytest.approx(want['effective_macs'], rel=1e-5), part
    bad = subprocess.run(cmd + ['--ann-file', 'test=broken_infos_val.pkl'], capture_output=True,
                         text=True, cwd=REPO)
    assert bad.returncode == 2 and 'Traceback' not in bad.stderr
    line = bad.stderr.strip().splitlines()[-1]
    assert 'broken_infos_val.pkl entry 1' in line and "missing key 'lidar_points'" in line, line
    typo = subprocess.run(cmd + ['--ann-file', 'tset=my_infos_val.pkl'], capture_output=True,
                          text=True, cwd=REPO)
    assert typo.returncode == 2 and "unknown split 'tset'" in typo.stderr
