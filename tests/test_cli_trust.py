"""The tools' one error path (user mistakes one line and exit 2, bugs a traceback, decided by
where the error comes from), an over-budget pruning, and tools/test.py's closing AP table."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO
from conftest import one_line_error as _one_line_error
from conftest import run_tool as _run

SECOND = 'configs/demo/second_synth-kitti_cpu.py'
SECOND_CKPT = 'checkpoints/second_synth-kitti_cpu.pth'


def test_one_error_path_decides_by_origin_not_by_class(capsys):
    """run_cli: dm3d_mm's input checks (UserError, whatever builtin class it also is) and a
    config type mmengine's registry does not know are one line and exit 2; any other error,
    a KeyError or ValueError of a bug included, propagates with its traceback."""
    from mmdet3d.registry import MODELS

    from dm3d_mm.apis.cli import run_cli
    from dm3d_mm.errors import MissingFile, MissingKey, UserError

    def raising(exc):
        def main():
            raise exc
        return main

    for exc, line in ((UserError('flops_target out of range'), 'flops_target out of range'),
                      (MissingKey("config has no 'base_channels'"), "no 'base_channels'"),
                      (MissingFile('checkpoint not found: x.pth'), 'checkpoint not found')):
        with pytest.raises(SystemExit) as stop:
            run_cli(raising(exc))
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f'error: {exc}'] and line in err[0]
    for bug in (KeyError('base_channels'), ValueError('shapes differ'), TypeError('x')):
        with pytest.raises(type(bug)):  # not SystemExit: the traceback is shown
            run_cli(raising(bug))

    def unknown_type():
        MODELS.build(dict(type='NoSuchDetector'))
    with pytest.raises(SystemExit):
        run_cli(unknown_type)
    err = capsys.readouterr().err
    assert err.startswith('error: config: NoSuchDetector is not in the') and '\n' == err[-1]


def test_an_injected_internal_key_error_in_a_tool_shows_its_traceback(synth_root, tmp_path):
    """A bug inside tools/prune.py (here a KeyError raised where the detector is built) is
    not a user mistake: full traceback, exit 1, nothing written."""
    code = ('import runpy, sys; import dm3d_mm.apis.model as m\n'
            'def boom(*a, **k):\n    raise KeyError("base_channels")\n'
            'm.build_detector = boom\n'
            f'sys.argv = ["prune.py", {SECOND!r}, "--checkpoint", {SECOND_CKPT!r}, '
            f'"--work-dir", {str(tmp_path / "o")!r}, "--data-root", {synth_root!r}]\n'
            'runpy.run_path("tools/prune.py", run_name="__main__")\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          cwd=REPO)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert 'Traceback' in proc.stderr and "KeyError: 'base_channels'" in proc.stderr
    assert not [ln for ln in proc.stderr.splitlines() if ln.startswith('error: ')]
    assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize('tool,args,words', [
    ('train.py', [SECOND, '--cfg-options', 'model.type=NoSuchDetector'],
     ['NoSuchDetector is not in the']),
    ('train.py', [SECOND, '--auto-scale-lr', '--cfg-options', 'auto_scale_lr=None'],
     ['auto_scale_lr']),
    ('test.py', [SECOND, 'checkpoints/missing.pth'], ['checkpoint not found']),
    ('prune.py', [SECOND, '--checkpoint', SECOND_CKPT, '--flops-target', '0.5',
                  '--cfg-options', 'pruning.num_buckets=0'], ['num_buckets is an integer >= 1']),
    ('prune.py', [SECOND, '--checkpoint', SECOND_CKPT, '--cfg-options',
                  'pruning.num_ratios=4'], ["needs ['flops_target']"]),
])
def test_train_test_and_prune_config_mistakes_are_one_line(synth_root, tmp_path, tool, args,
                                                          words):
    proc = _run(tool, *args, '--work-dir', str(tmp_path / 'w'), '--data-root', synth_root)
    _one_line_error(proc, *words)


def test_an_over_budget_pruning_is_one_line_and_writes_nothing_unless_asked(synth_root,
                                                                            tmp_path):
    """A model that counts over its budget after every re-allocation (a plugin's cost piece
    with an overhead, tests/cost_pieces.py): exit 2, one line with the closest model's cost
    and the budget, no pruned.pth; --allow-over-budget writes the closest model and its
    report says OVER BUDGET on its first line."""
    config = tmp_path / 'second_overhead.py'
    config.write_text(f"_base_ = [{osp.join(REPO, SECOND)!r}]\n"
                      "custom_imports = dict(imports=['dm3d_mm', 'cost_pieces'], "
                      'allow_failed_imports=False)\n'
                      "pruning = dict(cost='flops_with_overhead', num_ratios=8)\n")
    env = dict(os.environ, PYTHONPATH=osp.join(REPO, 'tests'))
    args = [str(config), '--checkpoint', SECOND_CKPT, '--flops-target', '0.5',
            '--calib-frames', '2', '--data-root', synth_root]
    work = tmp_path / 'refused'
    proc = _run('prune.py', *args, '--work-dir', str(work), env=env)
    line = _one_line_error(proc, 'no pruned model fits', 'over the budget',
                           '--allow-over-budget')
    assert 'GMACs per frame' in line
    assert not work.exists() or not os.listdir(work)
    work = tmp_path / 'kept'
    proc = _run('prune.py', *args, '--work-dir', str(work), '--allow-over-budget', env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (work / 'pruned.pth').exists()
    report = (work / 'prune_report.md').read_text().splitlines()
    assert report[2].startswith('**OVER BUDGET**: target 0.5 of the model'), report[:3]
    assert json.loads((work / 'prune_report.json').read_text())['fits'] is False
    assert 'OVER BUDGET' in proc.stdout.strip().splitlines()[-1]


def test_test_tool_ends_with_the_compact_ap40_table(synth_root, tmp_path):
    """tools/test.py on the 8 val frames: its last lines are the 3D AP40 table, one row per
    class and the mAP row, the mAP the mean of the class rows."""
    proc = _run('test.py', SECOND, SECOND_CKPT, '--data-root', synth_root, '--work-dir',
                str(tmp_path / 'w'), '--cfg-options', 'test_dataloader.num_workers=0',
                'test_dataloader.persistent_workers=False')
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()[-6:]
    assert lines[0].startswith('| 3D AP40') and lines[0].endswith('| easy | moderate | hard |')
    rows = {ln.split('|')[1].strip(): [float(v) for v in ln.split('|')[2:5]]
            for ln in lines[2:]}
    assert set(rows) == {'Car', 'Pedestrian', 'Cyclist', 'mAP (3 classes)'}
    for i in range(3):
        mean = sum(rows[c][i] for c in ('Car', 'Pedestrian', 'Cyclist')) / 3
        assert rows['mAP (3 classes)'][i] == pytest.approx(mean, abs=0.006)
    assert rows['mAP (3 classes)'][1] > 30  # a trained detector, not an empty table
