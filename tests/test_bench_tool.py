"""``tools/bench.py``: every module of ``dm3d_mm/benches`` registers one bench that
``--list`` names with its description and that parses its own arguments; a bench's table
holds what it measured (host syncs: the counter's own numbers); an unknown name is one
line."""
import pkgutil
import re

from conftest import one_line_error, run_tool


def test_list_names_one_bench_per_module_and_each_parses_its_arguments():
    import dm3d_mm.benches
    modules = {m.name for m in pkgutil.iter_modules(dm3d_mm.benches.__path__)} - \
        {'base', 'helpers'}
    proc = run_tool('bench.py', '--list')
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = dict(re.findall(r'^  (\w+) +(\S.*)$', proc.stdout, flags=re.M))
    assert set(listed) == modules
    assert all(listed.values())
    for name in ('host_syncs', 'kd_speed'):
        helped = run_tool('bench.py', name, '--help')
        assert helped.returncode == 0 and '--data-root' in helped.stdout, helped.stderr


def test_a_bench_prints_what_it_measured_and_an_unknown_name_is_one_line(synth_root):
    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.cost.host_syncs import count_host_syncs
    from dm3d_mm.pruning.calib_frames import calibration_batches
    proc = run_tool('bench.py', 'host_syncs', '--frames', '1', '--models', 'SECOND dense',
                    '--data-root', synth_root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = next(ln for ln in proc.stdout.splitlines() if ln.startswith('| SECOND dense |'))
    ops, syncs = (float(c) for c in row.split('|')[2:4])
    cfg = load_config('configs/demo/second_synth-kitti_cpu.py', data_root=synth_root)
    model = build_detector(cfg, 'checkpoints/second_synth-kitti_cpu.pth')
    count = count_host_syncs(model, calibration_batches(cfg, 1, 'val')).per_frame()
    assert (ops, syncs) == (round(count['ops']), count['syncs'])
    one_line_error(run_tool('bench.py', 'no_such_bench'), 'no_such_bench', 'host_syncs')
