"""tools/ablate.py machinery on a few frames: the paper's studies run their cells, a
fine-tuned weight cell keeps its masks, the dense-ft control trains with frozen BN
statistics, tables and plots come out well-formed, and a re-run skips finished cells."""
import json
import os.path as osp

import pytest
import torch
from conftest import NO_WORKERS, REPO

OPTIONS = NO_WORKERS


def _table_rows(md: str):
    """Data rows of a markdown table, each as a list of cells; every row as wide as the
    header."""
    lines = [ln for ln in md.splitlines() if ln.startswith('|')]
    width = lines[0].count('|')
    assert all(ln.count('|') == width for ln in lines), md
    assert set(lines[1].replace('|', '').replace('-', '').replace(':', '')) <= {''}
    return [[c.strip() for c in ln.strip('|').split('|')] for ln in lines[2:]]


def test_cell_names_and_bad_cells():
    from dm3d_mm.studies.cells import Cell
    assert Cell().name == 'second:dense'
    assert Cell(control=True).name == 'second:dense-ft'
    assert Cell(spatial='spss50', control=True).name == 'second:spss50-ft'
    assert Cell(spatial='spss50', control=True).kind == 'spatial-ft'
    assert Cell(budget=0.309, method='lamp').name == 'second:lamp30.9'
    assert Cell(spatial='ada3d', budget=0.5).name == 'second:ada3d+dm3d50'
    assert Cell('centerpoint', budget=0.25, parts='head').kind == 'weight'
    assert Cell(budget=0.2, min_density=0.05).name == 'second:dm3d20-floor5'
    for bad in (dict(detector='votenet'), dict(spatial='spss50', detector='centerpoint'),
                dict(budget=1.5), dict(method='random'), dict(parts='roi'),
                dict(control=True, budget=0.5), dict(budget=0.5, min_density=1.0),
                dict(budget=0.5, method='lamp', min_density=0.1), dict(min_density=0.1)):
        with pytest.raises(ValueError):
            Cell(**bad)


def test_studies_tables_plots_and_resume(tiny_root, tmp_path):
    from dm3d_mm.studies.ablation import Ablation, Cell, cell_of
    from dm3d_mm.studies.cells import study_tab6, study_tab12
    from dm3d_mm.studies.report import (
        plot_ap_vs_flops,
        plot_layer_allocation,
        table_all,
        table_tab6,
        table_tab12,
    )
    abl = Ablation(str(tmp_path), tiny_root, epochs=0, calib_frames=2, flops_frames=2,
                   checkpoint_root=REPO, cfg_options=OPTIONS)
    # Tab. 1/2: the DM3D cell is pruned to the FLOPs Ada3D was measured at
    cells = study_tab12(abl.run, 'second')
    rows = {c.name: abl.results[c.name] for c in cells}
    ada = rows['second:ada3d']
    assert ada['flops_ratio'] < 0.6
    matched = [r for r in rows.values() if r['kind'] == 'weight']
    assert len(matched) == 1 and matched[0]['budget'] == round(ada['flops_ratio'], 3)
    assert matched[0]['flops_ratio'] == pytest.approx(ada['flops_ratio'], abs=0.03)
    assert rows['second:dense']['flops_ratio'] == pytest.approx(1.0)
    # Fig. 4 data: the allocation in network order, shares of the dense FLOPs
    alloc = matched[0]['allocation']
    assert alloc[0]['name'].startswith('middle_encoder')
    assert alloc[-1]['name'].startswith('neck')
    assert all(0 <= a['pruned'] <= 1 for a in alloc)
    # the same budget with a density floor that forbids the matched cell's deepest layer
    # ratio (one 1/16 candidate step less): every layer stops at 1 - floor
    floor = round(1 - max(a['pruned'] for a in alloc) + 1 / 16, 4)
    floored = abl.run(Cell(budget=matched[0]['budget'], min_density=floor))
    assert floored['name'].endswith(f'-floor{round(floor * 100, 1):g}')
    assert max(a['pruned'] for a in floored['allocation']) <= 1 - floor + 1e-6
    assert floored['flops_ratio'] == pytest.approx(ada['flops_ratio'], abs=0.03)
    table = _table_rows(table_tab12(abl.results, 'second'))  # the floor cell is not Tab. 1/2's
    assert [r[0] for r in table] == ['dense', 'dense-ft', 'Ada3D',
                                     'DM3D (weight, at Ada3D FLOPs)']

    # Tab. 6: the weight budget is counted on the spatially pruned model
    # (SPS-Conv with the supervised ranking: SPSSVoxelNet, pruned and counted like the rest)
    study_tab6(abl.run, 'second', [0.5], spatial=['spss50_fg-margin'])
    spss = abl.results['second:spss50_fg-margin']
    both = abl.results['second:spss50_fg-margin+dm3d50']
    assert both['flops_ratio'] == pytest.approx(0.5 * spss['flops_ratio'], rel=0.1)
    tab6 = _table_rows(table_tab6(abl.results, 'second'))
    assert {(r[0], r[1]) for r in tab6} == {('ada3d', '-')} | {  # Ada3D: Tab. 1/2's row
        ('spss50_fg-margin', b) for b in ('-', '- (FT)', '0.50')}
    # "vs reference": DM3D on top is measured against the spatial model's fine-tuned control
    spss_ft = abl.results['second:spss50_fg-margin-ft']
    assert spss_ft['kind'] == 'spatial-ft' and spss_ft['allocation'] is None
    row = next(r for r in tab6 if r[:2] == ['spss50_fg-margin', '0.50'])
    assert float(row[-1]) == pytest.approx(both['mAP'] - spss_ft['mAP'], abs=0.051)
    assert all(float(r[3]) == pytest.approx(0.5, abs=0.05) for r in tab6 if r[1] == '0.50')

    everything = _table_rows(table_all(abl.results, 'second'))
    assert len(everything) == len(abl.results) - 1  # all but _meta
    assert {r[4] for r in everything if r[1] == 'weight'} == {'counted only'}
    assert {r[4] for r in everything if r[1] in ('spatial', 'spatial-ft')} == {'skipped'}
    for plot in (plot_ap_vs_flops(abl.results, 'second', str(tmp_path / 'f1.png')),
                 plot_layer_allocation(abl.results, 'second', str(tmp_path / 'f4.png'))):
        assert osp.getsize(plot) > 1000
    assert plot_layer_allocation(abl.results, 'centerpoint', str(tmp_path / 'x.png')) is None

    # the joint study's cell (a small grid) and the wall-time axis: every cell timed side by
    # side as it was evaluated (pruned checkpoint, chosen keep ratios in force)
    from dm3d_mm.studies.frontier_time import read_wall_times, time_cells, write_wall_times
    from dm3d_mm.studies.report import plot_joint_frontier, rows_of, table_joint
    abl.spatial_grid = dict(grid=(1.0, 0.5), sites=['bev'])
    joint = abl.run(Cell(spatial='ada3d', budget=0.2, joint=True))
    assert joint['kind'] == 'joint' and 'middle_encoder.bev' in joint['joint_choice'][
        'keep_ratios']
    ckpt = abl.model_files(joint['name'])[1]
    assert ckpt == joint['checkpoint'] == osp.join(str(tmp_path), 'second_ada3d+joint20',
                                                   'pruned.pth')
    assert abl.model_files('second:dense')[1] == osp.join(
        REPO, 'checkpoints/second_synth-kitti_cpu.pth')
    timed = time_cells(abl, 'second', frames=1, repeats=1)
    assert set(timed['times']) == {r['name'] for r in rows_of(abl.results, 'second')}
    write_wall_times(str(tmp_path), 'second', timed)
    wall = read_wall_times(str(tmp_path))['second']
    assert wall['second:dense'] == 1.0 and all(v > 0 for v in wall.values())
    jt = table_joint(abl.results, 'second', wall)
    assert 'wall / dense' in jt.splitlines()[0]
    row = next(r for r in _table_rows(jt) if r[1] == 'joint')
    assert float(row[3]) == pytest.approx(wall[joint['name']], abs=5e-4)
    assert osp.getsize(plot_joint_frontier(abl.results, 'second', str(tmp_path / 'j.png'),
                                           wall)) > 1000

    # fine-tuned cells: the weight cell keeps its masks, the control its BN statistics
    abl.epochs = 1
    cell = Cell(budget=0.5, parts='2D')
    row = abl.run(cell)
    ckpt = torch.load(osp.join(tmp_path, 'second_dm3d50-2D', 'finetune', 'epoch_1.pth'),
                      map_location='cpu', weights_only=False)
    masks = ckpt['meta']['dm3d']['masks']
    assert masks and all(n.startswith(('backbone', 'neck')) for n in masks)
    sd = ckpt['state_dict']
    assert all(not sd[n + '.weight'][~m].any() for n, m in masks.items())
    assert row['epochs'] == 1
    assert abl.model_files(row['name'])[1] == row['checkpoint'] == osp.join(
        str(tmp_path), 'second_dm3d50-2D', 'finetune', 'epoch_1.pth')
    abl.results.pop('second:dense-ft')
    control = abl.run(Cell(control=True))
    assert control['epochs'] == 1 and control['allocation'] is None
    dense_sd = torch.load(osp.join(REPO, 'checkpoints/second_synth-kitti_cpu.pth'),
                          map_location='cpu', weights_only=False)['state_dict']
    ft_sd = torch.load(osp.join(tmp_path, 'second_dense-ft', 'finetune', 'epoch_1.pth'),
                       map_location='cpu', weights_only=False)['state_dict']
    bn = [k for k in dense_sd if k.endswith('running_mean')]
    assert bn and all(torch.equal(dense_sd[k], ft_sd[k]) for k in bn)
    weights = [k for k in dense_sd if k.endswith('.weight') and dense_sd[k].dim() > 1]
    assert any(not torch.equal(dense_sd[k], ft_sd[k]) for k in weights)

    # a re-run reads the JSON and skips every finished cell
    before = json.load(open(abl.path))
    again = Ablation(str(tmp_path), tiny_root, epochs=1, checkpoint_root=REPO,
                     cfg_options=OPTIONS)
    logs = []
    for name in [k for k in before if not k.startswith('_')]:
        again.run(cell_of(before[name]), log=logs.append)
    assert all('skipped' in line for line in logs) and len(logs) == len(before) - 1
    assert json.load(open(again.path)) == before

    # --report-only: the tables and plots of what is recorded, no cell run, nothing changed
    import subprocess
    import sys
    out = subprocess.run([sys.executable, osp.join(REPO, 'tools/ablate.py'), '--report-only',
                          '--detector', 'second', '--study', 'tab12', '--budgets', '0.1',
                          '--work-dir', str(tmp_path)], cwd=REPO, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'second:dm3d10' not in out.stdout and json.load(open(again.path)) == before
    md = open(tmp_path / 'ablation.md').read()
    assert 'Tab. 1/2' in md and 'Tab. 6' in md and osp.getsize(tmp_path / 'fig1_second.png')


def test_missing_spatial_checkpoint_skips_its_cells(tmp_path):
    """A spatial model not trained yet: its cells are skipped with the command that trains
    it, nothing is recorded (a re-run after the training runs them), and Tab. 1/2 has no
    Ada3D FLOPs to match; a missing dense checkpoint stays an error."""
    from dm3d_mm.studies.ablation import Ablation, Cell
    from dm3d_mm.studies.cells import study_tab12
    missing = str(tmp_path / 'none.pth')
    abl = Ablation(str(tmp_path), str(tmp_path),
                   checkpoints={'centerpoint:ada3d': missing, 'centerpoint': missing})
    logs = []
    assert abl.run(Cell('centerpoint', spatial='ada3d', budget=0.5), log=logs.append) is None
    assert 'checkpoint not found' in logs[0]
    assert 'tools/train_demo_checkpoints.py' in logs[0]
    assert 'centerpoint_synth-kitti_cpu_ada3d.py' in logs[0]
    assert abl.results == {} and not osp.exists(abl.path)
    # a spatial model whose checkpoint another config makes (the distilled Ada3D, run with
    # the sparse-head config): the command names the config that trains it
    abl.checkpoints['centerpoint:ada3d-kd_sparse-head'] = missing
    assert abl.run(Cell('centerpoint', spatial='ada3d-kd_sparse-head', budget=0.5),
                   log=logs.append) is None
    assert ('tools/train_demo_checkpoints.py '
            'configs/distill/centerpoint_synth-kitti_cpu_ada3d-kd.py') in logs[-1]
    with pytest.raises(FileNotFoundError, match='centerpoint checkpoint not found'):
        abl.run(Cell('centerpoint'))
    ran = []
    cells = study_tab12(lambda c: ran.append(c.name) or (None if c.spatial else {}),
                        'centerpoint')
    assert ran == ['centerpoint:dense', 'centerpoint:dense-ft', 'centerpoint:ada3d']
    assert [c.name for c in cells] == ran


def test_joint_study_runs_the_chosen_series():
    """--series picks what the joint study runs: the controls, and the pruned series at
    each budget; the dense and spatial models are evaluated regardless (a hand-set cell
    needs the spatial model's recorded FLOPs)."""
    from dm3d_mm.studies.cells import JOINT_SERIES, study_joint
    ran = []

    def run(cell):
        ran.append(cell.name)
        return {'flops_ratio': 0.4} if cell.spatial and cell.budget is None else {}

    study_joint(run, 'second', [0.2, 0.1])
    every = list(ran)
    assert every[:4] == ['second:dense', 'second:dense-ft', 'second:ada3d', 'second:ada3d-ft']
    assert len(every) == 4 + 2 * 3
    ran.clear()
    study_joint(run, 'second', [0.2, 0.1], series=('joint', 'hand'))
    assert ran[:2] == ['second:dense', 'second:ada3d'] and len(ran) == 2 + 2 * 2
    assert set(ran) < set(every) and not any(n.startswith('second:dm3d') for n in ran)
    assert all('joint' in n for n in ran[2::2]) and all('joint' not in n for n in ran[3::2])
    ran.clear()
    study_joint(run, 'second', [0.2, 0.1], series=('controls', ))
    assert ran == every[:4]
    with pytest.raises(ValueError, match='unknown joint series'):
        study_joint(run, 'second', [0.2], series=('hand', 'spatial'))
    assert set(JOINT_SERIES) == {'controls', 'dm3d', 'joint', 'hand'}
    # --recovery finetune kd: each weight cell and the spatial control once per recovery,
    # dense-ft plainly; a KD cell is named for it
    ran.clear()
    study_joint(run, 'second', [0.1], series=('controls', 'joint'),
                recoveries=('finetune', 'kd'))
    assert ran == ['second:dense', 'second:dense-ft', 'second:ada3d', 'second:ada3d-ft',
                   'second:ada3d-ft-kd', 'second:ada3d+joint10', 'second:ada3d+joint10-kd']


def test_a_kd_cell_needs_a_fine_tune_and_a_known_recovery():
    from dm3d_mm.errors import UserError
    from dm3d_mm.studies.cells import Cell
    assert Cell('centerpoint', spatial='ada3d', budget=0.5, recovery='kd').name == \
        'centerpoint:ada3d+dm3d50-kd'
    with pytest.raises(UserError, match='unknown recovery'):
        Cell('second', budget=0.5, recovery='teacher')
    with pytest.raises(UserError, match='fine-tuned cell'):
        Cell('second', recovery='kd')  # the dense model as trained is not fine-tuned


def test_a_work_dir_holds_the_joint_cells_of_one_objective(tmp_path):
    """Joint cells are named by budget alone: a work dir whose joint cells were chosen by
    one objective (or re-rank, or set of sites) refuses another (recorded in _meta; none
    recorded: the sum, no re-rank, the model's own sites), and the tools' objective and
    re-rank flags make the spatial= section's pieces or a clear error."""
    from argparse import Namespace

    from dm3d_mm.apis.cli import spatial_objective_of, spatial_rerank_of
    from dm3d_mm.studies.ablation import Ablation
    from dm3d_mm.studies.results_file import ResultsFile
    sat = dict(type='saturating_weight', scale=0.4)
    ResultsFile(str(tmp_path / 'ablation.json')).save(
        {'second:ada3d+joint10': {'kind': 'joint', 'mAP': 80.0}})
    Ablation(str(tmp_path), str(tmp_path))  # the sum, as recorded
    with pytest.raises(ValueError, match="joint cells of the objective {'type': 'sum'}"):
        Ablation(str(tmp_path), str(tmp_path), spatial_grid=dict(objective=sat))
    # the same objective however it is written
    Ablation(str(tmp_path), str(tmp_path), spatial_grid=dict(objective=dict(type='sum')))
    other = tmp_path / 'sat'
    abl = Ablation(str(other), str(tmp_path), spatial_grid=dict(objective=sat))
    abl.results['second:ada3d+joint10'] = {'kind': 'joint', 'mAP': 80.0}
    abl._save()
    assert json.load(open(abl.path))['_meta']['joint_objective'] == sat
    Ablation(str(other), str(tmp_path), spatial_grid=dict(objective=dict(sat, scale=0.4000)))
    Ablation(str(other), str(tmp_path),
             spatial_grid=dict(objective=dict(type='saturating_weight', scale=2 / 5)))
    with pytest.raises(ValueError, match='joint cells of the objective'):
        Ablation(str(other), str(tmp_path))
    with pytest.raises(ValueError, match='joint cells of the objective'):
        Ablation(str(other), str(tmp_path), spatial_grid=dict(objective=dict(sat, scale=1)))

    # a re-rank is recorded the same way, its defaults filled in
    probe = dict(type='finetune_probe', top_k=3, steps=30, seed=0, repeats=3)
    ranked = tmp_path / 'ranked'
    abl = Ablation(str(ranked), str(tmp_path), spatial_grid=dict(rerank='finetune_probe'))
    abl.results['second:ada3d+joint10'] = {'kind': 'joint', 'mAP': 80.0}
    abl._save()
    assert json.load(open(abl.path))['_meta']['joint_rerank'] == probe
    Ablation(str(ranked), str(tmp_path), spatial_grid=dict(rerank=dict(type='finetune_probe',
                                                                       steps=30)))
    for other_grid in (None, dict(rerank=dict(probe, top_k=2))):
        with pytest.raises(ValueError, match='joint cells of the rerank'):
            Ablation(str(ranked), str(tmp_path), spatial_grid=other_grid)
    with pytest.raises(ValueError, match='joint cells of the rerank None'):
        Ablation(str(tmp_path), str(tmp_path), spatial_grid=dict(rerank=probe))

    # and the sites: location names, qualified on each detector's encoder
    sited = tmp_path / 'sited'
    abl = Ablation(str(sited), str(tmp_path), spatial_grid=dict(sites=['input', 'bev']))
    assert abl._spatial_of('second')['sites'] == ['middle_encoder.input', 'middle_encoder.bev']
    assert abl._spatial_of('centerpoint')['sites'] == ['pts_middle_encoder.input',
                                                       'pts_middle_encoder.bev']
    abl.results['second:ada3d+joint10'] = {'kind': 'joint', 'mAP': 80.0}
    abl._save()
    assert json.load(open(abl.path))['_meta']['joint_sites'] == ['bev', 'input']
    Ablation(str(sited), str(tmp_path), spatial_grid=dict(sites=['bev', 'input']))
    for other_grid in (None, dict(sites=['bev'])):
        with pytest.raises(ValueError, match='joint cells of the sites'):
            Ablation(str(sited), str(tmp_path), spatial_grid=other_grid)

    def ranks(kind=None, top_k=None, steps=None, repeats=None):
        return spatial_rerank_of(Namespace(spatial_rerank=kind, spatial_rerank_top_k=top_k,
                                           spatial_rerank_steps=steps,
                                           spatial_rerank_repeats=repeats))
    assert ranks() is None and ranks('finetune_probe') == dict(type='finetune_probe')
    assert ranks('finetune_probe', 4, 10, 2) == dict(type='finetune_probe', top_k=4,
                                                     steps=10, repeats=2)
    with pytest.raises(ValueError, match='set --spatial-rerank finetune_probe'):
        ranks(top_k=4)

    def flags(kind=None, scale=None):
        return spatial_objective_of(Namespace(spatial_objective=kind,
                                              spatial_objective_scale=scale))
    assert flags() is None and flags('sum') == 'sum'
    assert flags('saturating_weight', 0.4) == sat
    with pytest.raises(ValueError, match='needs --spatial-objective-scale'):
        flags('saturating_weight')
    with pytest.raises(ValueError, match='is the scale of'):
        flags('sum', 0.4)


def test_ablate_cli_rejects_bad_input(tmp_path):
    import subprocess
    import sys
    for args, words in ((['--report-only'], 'no recorded cells'),
                        (['--budgets', '0'], 'budgets'),
                        (['--checkpoint', 'second'], 'KEY=PATH'),
                        (['--checkpoint', f'second={tmp_path}/none.pth', '--epochs', '0'],
                         'checkpoint not found')):
        out = subprocess.run([sys.executable, 'tools/ablate.py', '--work-dir', str(tmp_path),
                              *args], cwd=REPO, capture_output=True, text=True)
        assert out.returncode == 2 and words in out.stderr, out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith('error: ')]
    assert errors == [f'error: second checkpoint not found: {tmp_path}/none.pth']
    assert 'Traceback' not in out.stderr


def _save_rows(path, tag, n):
    from dm3d_mm.studies.results_file import ResultsFile
    file = ResultsFile(path)
    results = file.load()
    for i in range(n):
        results[f'{tag}{i}'] = {'mAP': i}
        results.setdefault('_meta', {}).setdefault(tag, {})['n'] = i
        file.save(results)


def test_results_of_runs_sharing_a_file_are_all_kept(tmp_path):
    """Two studies run side by side into one work dir: each save keeps the other's rows
    (before, the later writer's in-memory results overwrote the file), and a run's stale
    copy of another run's entry never reverts what that run saved later."""
    from dm3d_mm.studies.results_file import ResultsFile, load_results
    path = str(tmp_path / 'ablation.json')
    fa, fb = ResultsFile(path), ResultsFile(path)
    a, b = fa.load(), fb.load()  # both loaded before either saved
    a['dense'] = {'mAP': 1.0}
    a['_meta'] = {'second': {'dense_gmacs': 2.0}}
    fa.save(a)
    b['dense'] = {'mAP': 9.0}  # a row both changed: the saving run's own is written
    b['lamp33'] = {'mAP': 3.0}
    b['_meta'] = {'centerpoint': {'dense_gmacs': 3.0}}
    fb.save(b)
    saved = load_results(path)
    assert saved['lamp33'] == {'mAP': 3.0} and saved['dense'] == {'mAP': 9.0}
    assert saved['_meta'] == {'second': {'dense_gmacs': 2.0},
                              'centerpoint': {'dense_gmacs': 3.0}}
    assert b['_meta']['second'] == {'dense_gmacs': 2.0}  # the run sees the other's rows
    b['_meta']['second']['dense_gmacs'] = 5.0  # b changes the entry a wrote (unsaved)
    fa.save(a)  # a re-saves untouched, a sees b's rows
    assert a['lamp33'] == {'mAP': 3.0}
    a['_meta']['centerpoint']['dense_gmacs'] = 4.0
    fa.save(a)
    fb.save(b)  # b's stale centerpoint entry must not revert a's 4.0
    saved = load_results(path)
    assert saved['_meta'] == {'second': {'dense_gmacs': 5.0},
                              'centerpoint': {'dense_gmacs': 4.0}}
    fb.save(b)
    fa.save(a)
    assert load_results(path) == saved

    import multiprocessing as mp
    ctx = mp.get_context('spawn')
    procs = [ctx.Process(target=_save_rows, args=(path, tag, 25)) for tag in 'xy']
    for p in procs:
        p.start()
    for p in procs:
        p.join(600)
        assert p.exitcode == 0
    saved = load_results(path)
    assert all(f'{t}{i}' in saved for t in 'xy' for i in range(25))
    assert saved['_meta']['x'] == {'n': 24} and saved['_meta']['y'] == {'n': 24}
    assert 'lamp33' in saved and not list(tmp_path.glob('*.tmp'))


def test_every_demo_checkpoint_input_is_shipped_or_made_by_a_demo_config(tmp_path):
    """`make checkpoints` can re-make every demo checkpoint: what each demo config starts
    from (``load_from``) or distils from (``distill.teacher.checkpoint``) is made by an
    earlier demo config or by the config of its name (a teacher in work_dirs); a config
    whose input is missing and made by none fails before training, naming both."""
    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.demo import DEMO_CONFIGS, config_making, train_demo_checkpoint
    from dm3d_mm.errors import MissingFile
    made = []
    for config in DEMO_CONFIGS:
        cfg = load_config(osp.join(REPO, config))
        teacher = (cfg.get('distill') or {}).get('teacher') or {}
        for needed in (cfg.get('load_from'), teacher.get('checkpoint')):
            if needed and needed.startswith('checkpoints/'):
                assert config_making(needed) in made, (config, needed)
            elif needed:  # a teacher trained into work_dirs when missing
                maker = config_making(needed)
                assert maker and config_making(maker) == maker, (config, needed)
        made.append(config)
    assert config_making('work_dirs/demo_checkpoints/teachers/'
                         'centerpoint_synth-kitti_cpu_ada3d_control.pth') == \
        'configs/demo/studies/centerpoint_synth-kitti_cpu_ada3d_control.py'
    bad = tmp_path / 'student.py'
    bad.write_text(f"_base_ = ['{REPO}/configs/demo/second_synth-kitti_cpu.py']\n"
                   "load_from = 'checkpoints/no_such_model.pth'\n")
    with pytest.raises(MissingFile, match=f'{bad} needs checkpoints/no_such_model.pth'):
        train_demo_checkpoint(str(bad), str(tmp_path), str(tmp_path / 'out'),
                              str(tmp_path / 'work'))
    assert not osp.exists(tmp_path / 'out')
