"""Markdown tables in the DM3D paper's layouts (Tab. 1/2, 4, 5, 6, Fig. 1 as a table) and the
plots (Fig. 1: AP against joint FLOPs; Fig. 4: layer-wise sparsity per budget; the joint
study's frontier against FLOPs and wall time) from ablation results."""
from typing import Dict, List, Optional

from ..apis.kitti_summary import CLASSES
from .cells import DETECTORS

# what a cell's FLOPs saving is: computed less (spatial pruning skips the voxels and pixels)
# or counted only (unstructured weight masks: the dense kernels still run)
SAVING = {'dense': '-', 'dense-ft': '-', 'spatial': 'skipped', 'spatial-ft': 'skipped',
          'weight': 'counted only', 'spatial + weight': 'spatial skipped, weight counted only',
          'joint': 'spatial skipped, weight counted only'}
_KIND_ORDER = {'dense': 0, 'dense-ft': 1, 'spatial': 2, 'spatial-ft': 3, 'weight': 4,
               'spatial + weight': 5, 'joint': 6}


def rows_of(results: Dict, detector: Optional[str] = None) -> List[Dict]:
    """Result rows (no ``_meta``), of one detector if given."""
    return [r for k, r in results.items() if not k.startswith('_')
            and (detector is None or r.get('detector', 'second') == detector)]


def _ap_cells(r) -> str:
    return ' | '.join(f"{r['ap'][c]['moderate']:.1f}" for c in CLASSES) + f" | {r['mAP']:.1f}"


def _control(results: Dict, detector: str) -> Optional[Dict]:
    return next((r for r in rows_of(results, detector) if r['kind'] == 'dense-ft'), None)


def _delta(r, ref) -> str:
    return '-' if ref is None else f"{r['mAP'] - ref['mAP']:+.1f}"


def _main_rows(results: Dict, detector: str) -> List[Dict]:
    """Rows whose budget is of the whole detector (any part set that is not pruned
    alone, Tab. 4's) with Fisher curves (not Tab. 5's)."""
    return [r for r in rows_of(results, detector) if r['estimator'] == 'fisher'
            and not DETECTORS[r.get('detector', 'second')].parts[r['parts']].alone]


def _variant_label(r) -> str:
    """What sets a weight cell apart from its method at a budget: its part set (when not
    'all') and DM3D's density floor (when set)."""
    bits = [] if r['parts'] == 'all' else [r['parts']]
    if r.get('min_density'):
        bits.append(f"floor {100 * r['min_density']:g} %")
    return f" ({', '.join(bits)})" if bits else ''


def table_all(results: Dict, detector: str) -> str:
    """Every cell of a detector (Fig. 1 as a table): FLOPs, per-class AP, mAP against the
    dense-ft control, whether the saving is skipped work or counted only, and seconds."""
    control = _control(results, detector)
    lines = ['| variant | kind | FLOPs vs dense | joint GMACs/frame | saving | FT epochs | Car | '
             'Ped | Cyc | mAP | vs dense-ft | seconds |',
             '|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|']
    rows = sorted(_main_rows(results, detector),
                  key=lambda r: (_KIND_ORDER[r['kind']], r.get('spatial') or '',
                                 r.get('method', 'dm3d'), -(r['budget'] or 1)))
    for r in rows:
        lines.append(f"| {r['name'].split(':', 1)[1]} | {r['kind']} | {r['flops_ratio']:.3f} | "
                     f"{r['gmacs']:.3f} | {SAVING[r['kind']]} | {r['epochs']} | "
                     f"{_ap_cells(r)} | {_delta(r, control)} | {r['seconds']:.0f} |")
    return '\n'.join(lines)


def table_tab12(results: Dict, detector: str) -> str:
    """Tab. 1/2: DM3D against Ada3D at Ada3D's measured joint FLOPs."""
    rows = rows_of(results, detector)
    ada = next((r for r in rows if r['kind'] == 'spatial' and r['spatial'] == 'ada3d'), None)
    if ada is None:
        return ''
    matched = [r for r in rows if r['kind'] == 'weight' and r.get('method') == 'dm3d'
               and r['parts'] == 'all' and r['estimator'] == 'fisher'
               and not r.get('min_density') and abs(r['budget'] - ada['flops_ratio']) < 0.0005]
    control = _control(results, detector)
    lines = ['| method | FLOPs vs dense | Car | Ped | Cyc | mAP | vs dense-ft |',
             '|---|---:|---:|---:|---:|---:|---:|']
    for label, r in [('dense', next((r for r in rows if r['kind'] == 'dense'), None)),
                     ('dense-ft', control), ('Ada3D', ada)] + \
            [('DM3D (weight, at Ada3D FLOPs)', r) for r in matched]:
        if r is not None:
            lines.append(f"| {label} | {r['flops_ratio']:.3f} | {_ap_cells(r)} | "
                         f"{_delta(r, control)} |")
    return '\n'.join(lines)


def table_tab6(results: Dict, detector: str) -> str:
    """Tab. 6: DM3D on top of each spatial model; the budget is of the spatial model's own
    FLOPs, so "vs reference" is the price of the weight pruning alone. The reference is the
    spatial model fine-tuned on the weight cells' schedule ("FT" row) where that cell ran,
    else the spatial model as trained."""
    rows = _main_rows(results, detector)
    lines = ['| spatial model | + DM3D budget | FLOPs vs dense | FLOPs vs spatial | Car | Ped | '
             'Cyc | mAP | vs reference |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|']
    bases = {r['spatial']: r for r in rows if r['kind'] == 'spatial'}
    for name, base in sorted(bases.items()):
        ft = [r for r in rows if r['kind'] == 'spatial-ft' and r['spatial'] == name]
        ontop = sorted((r for r in rows if r['kind'] == 'spatial + weight'
                        and r['spatial'] == name), key=lambda r: (r['parts'], -r['budget']))
        ref = ft[0] if ft else base
        for r in [base] + ft + ontop:
            budget = ('- (FT)' if r['kind'] == 'spatial-ft' else '-') if r['budget'] is None \
                else f"{r['budget']:.2f}" + _variant_label(r)
            lines.append(f"| {name} | {budget} | {r['flops_ratio']:.3f} | "
                         f"{r['flops_ratio'] / base['flops_ratio']:.3f} | {_ap_cells(r)} | "
                         f"{_delta(r, ref)} |")
    return '\n'.join(lines) if bases else ''


def _wall(wall: Optional[Dict[str, float]], r: Dict) -> str:
    return '' if not wall else (f"{wall[r['name']]:.3f} | " if r['name'] in wall else '- | ')


def table_joint(results: Dict, detector: str, wall: Optional[Dict[str, float]] = None) -> str:
    """The joint study: at each budget (fraction of the dense detector's joint FLOPs) DM3D
    alone, the spatial model at its trained keep ratios + DM3D (hand-set) and the joint
    allocation, each fine-tuned on the same schedule, against dense-ft and the spatial
    model's fine-tuned control; the joint cells' chosen keep ratios.

    Args:
        results (dict): the ablation's results.
        detector (str): the detector's key.
        wall (dict, optional): cell name -> whole-detector wall time / dense
            (``tools/bench.py frontier_time``); adds that column. Defaults to None.
    """
    rows = _main_rows(results, detector)
    joint = [r for r in rows if r['kind'] == 'joint']
    if not joint:
        return ''
    control = _control(results, detector)
    lines = ['| budget | series | FLOPs vs dense | ' + ('wall / dense | ' if wall else '')
             + 'Car | Ped | Cyc | mAP | vs dense-ft | keep ratios |',
             '|---:|---|---:|' + ('---:|' if wall else '') + '---:|---:|---:|---:|---:|---|']
    for r in [control] + [r for r in rows if r['kind'] in ('spatial', 'spatial-ft')
                          and r['spatial'] in {j['spatial'] for j in joint}]:
        if r is not None:
            lines.append(f"| - | {r['name'].split(':', 1)[1]} | {r['flops_ratio']:.3f} | "
                         f"{_wall(wall, r)}{_ap_cells(r)} | {_delta(r, control)} | |")
    groups = {}  # one group of rows per (budget, spatial model, parts): every recovery
    for j in sorted(joint, key=lambda r: (-r['budget'], _recovery(r))):
        groups.setdefault((round(j['budget'], 4), j['spatial'], j['parts']), []).append(j)
    for (budget, sp_name, parts), js in groups.items():
        spatial = next((r for r in rows if r['kind'] == 'spatial'
                        and r['spatial'] == sp_name), None)
        dm3d = [r for r in rows if r['kind'] == 'weight' and r['method'] == 'dm3d'
                and abs(r['budget'] - budget) < 5e-4 and r['parts'] == parts]
        hand = [r for r in rows if r['kind'] == 'spatial + weight' and spatial is not None
                and r['spatial'] == sp_name and r['parts'] == parts
                and abs(r['budget'] * spatial['flops_ratio'] - budget) < 5e-3]
        for label, r in [('DM3D alone', x) for x in dm3d] + \
                [(f'{sp_name} (trained ratios) + DM3D', x) for x in hand] + \
                [('joint', x) for x in js]:
            keep = r.get('joint_choice', {}).get('keep_ratios', {})
            keep = ', '.join(f"{k.split('.')[-1]} {v:g}" for k, v in keep.items())
            label += ' + KD' if _recovery(r) == 'kd' else ''
            lines.append(f"| {budget:.3f} | {label} | {r['flops_ratio']:.3f} | "
                         f"{_wall(wall, r)}{_ap_cells(r)} | {_delta(r, control)} | {keep} |")
    return '\n'.join(lines)


def _recovery(row: Dict) -> str:
    """How a row's cell recovered ('finetune' for rows recorded before recoveries)."""
    return row.get('recovery', 'finetune')


def _joint_series(r: Dict) -> Optional[str]:
    """The series of the joint study's plot a row belongs to (None: not plotted)."""
    kd = ' + KD' if _recovery(r) == 'kd' else ''
    if r['kind'] == 'joint':
        return f"joint on {r['spatial']}{kd}"
    if r['kind'] == 'spatial + weight':
        return f"{r['spatial']} (trained ratios) + DM3D{kd}"
    if r['kind'] == 'weight' and r['method'] == 'dm3d' and r['parts'] == 'all':
        return f'DM3D alone{kd}'
    if r['kind'] in ('dense', 'dense-ft', 'spatial', 'spatial-ft'):
        return r['name'].split(':', 1)[1]
    return None


def plot_joint_frontier(results: Dict, detector: str, path: str,
                        wall: Optional[Dict[str, float]] = None) -> Optional[str]:
    """The joint study's frontier: mAP against joint FLOPs and, where measured, against
    whole-detector wall time (both as fractions of dense), one line per series; None when
    the detector has no joint cell.

    Args:
        results (dict): the ablation's results.
        detector (str): the detector's key.
        path (str): the PNG written.
        wall (dict, optional): cell name -> wall time / dense. Defaults to None.
    """
    rows = [r for r in _main_rows(results, detector) if _joint_series(r)]
    if not any(r['kind'] == 'joint' for r in rows):
        return None
    plt = _pyplot()
    axes_x = [('flops_ratio', 'joint FLOPs / dense, log scale (weight savings counted only)')]
    if wall:
        axes_x.append(('wall', 'whole-detector wall time / dense (2 CPU cores)'))
    fig, axes = plt.subplots(1, len(axes_x), figsize=(5.5 * len(axes_x), 3.8), squeeze=False)
    series = {}
    for r in rows:
        series.setdefault(_joint_series(r), []).append(r)
    colours = plt.get_cmap('tab10').colors
    for ax, (key, label) in zip(axes[0], axes_x):
        for i, (name, rs) in enumerate(sorted(series.items())):
            # joined in budget order on both axes
            pts = [(r[key] if key != 'wall' else wall[r['name']], r['mAP'])
                   for r in sorted(rs, key=lambda r: r['flops_ratio'])
                   if key != 'wall' or r['name'] in wall]
            if not pts:
                continue
            single = len(pts) == 1
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker='*' if single else 'o',
                    markersize=9 if single else 5, label=name,
                    linestyle='none' if single else '-', color=colours[i % len(colours)])
        ax.set_xlabel(label)
        if key == 'flops_ratio':
            ax.set_xscale('log')
        ax.set_ylabel('val mAP (moderate, 3D AP40)')
        _style(ax, f'{detector}: joint allocation')
    return _save(plt, fig, path)


def _weight_cells_by(results: Dict, field: str, fixed: Dict, header: str) -> str:
    """Weight-only cells that differ in ``field`` (others as in ``fixed``), one row each."""
    rows = [r for r in rows_of(results) if r['kind'] == 'weight' and not r.get('min_density')
            and all(r.get(k, v) == v for k, v in fixed.items())]
    if len({r[field] for r in rows}) < 2:
        return ''
    lines = [f'| detector | {header} | budget | FLOPs vs dense | Car | Ped | Cyc | mAP |',
             '|---|---|---:|---:|---:|---:|---:|---:|']
    for r in sorted(rows, key=lambda r: (r.get('detector', ''), -r['budget'], r[field])):
        lines.append(f"| {r.get('detector', 'second')} | {r[field]} | {r['budget']:.2f} | "
                     f"{r['flops_ratio']:.3f} | {_ap_cells(r)} |")
    return '\n'.join(lines)


def table_parts(results: Dict) -> str:
    """Tab. 4 layout: which parts are weight-pruned."""
    table = _weight_cells_by(results, 'parts', dict(estimator='fisher', method='dm3d'),
                             'parts pruned')
    return table and table + ("\n\nbudget: fraction of the pruned part's own joint FLOPs "
                              "(all, all+head: of the whole detector's)")


def table_estimators(results: Dict) -> str:
    """Tab. 5 layout: Hessian (fisher) against actual distortion curves."""
    return _weight_cells_by(results, 'estimator', dict(parts='all', method='dm3d'),
                            'distortion curves')


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _style(ax, title: str) -> None:
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _save(plt, fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _finish(plt, fig, ax, title: str, path: str) -> str:
    _style(ax, title)
    return _save(plt, fig, path)


def plot_ap_vs_flops(results: Dict, detector: str, path: str) -> str:
    """Fig. 1: mAP against joint FLOPs, one line per weight method, spatial models and
    spatial + DM3D, the dense model and its dense-ft control as stars."""
    plt = _pyplot()
    rows = _main_rows(results, detector)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    series = {}
    for r in rows:
        if r['kind'] == 'weight':
            key = ((r['method'].upper() if r['method'] == 'dm3d' else r['method'])
                   + _variant_label(r), 'o')
        elif r['kind'] == 'spatial + weight':
            key = (f"{r['spatial']} + DM3D" + _variant_label(r), '^')
        elif r['kind'] == 'joint':
            key = (f"joint on {r['spatial']}" + _variant_label(r), 'P')
        elif r['kind'] == 'spatial':
            key = (r['spatial'], 's')
        elif r['kind'] == 'spatial-ft':
            key = (f"{r['spatial']}, fine-tuned", 'D')
        else:
            key = (r['kind'], '*')
        series.setdefault(key, []).append(r)
    # one colour per series: past matplotlib's 10 default colours the cycle would repeat
    colours = plt.get_cmap('tab20' if len(series) > 10 else 'tab10').colors
    for i, ((label, marker), rs) in enumerate(sorted(series.items())):
        rs = sorted(rs, key=lambda r: r['flops_ratio'])
        ax.plot([r['flops_ratio'] for r in rs], [r['mAP'] for r in rs], marker=marker,
                label=label, markersize=9 if marker == '*' else 5,
                color=colours[i % len(colours)])
    ax.set_xlabel('joint FLOPs / dense (weight savings counted only)')
    ax.set_ylabel('val mAP (moderate, 3D AP40)')
    return _finish(plt, fig, ax, detector, path)


def plot_layer_allocation(results: Dict, detector: str, path: str) -> Optional[str]:
    """Fig. 4: DM3D's fraction of weights pruned per layer (network order), one line per
    budget; None when no DM3D cell of the detector has an allocation."""
    rows = sorted((r for r in _main_rows(results, detector)
                   if r['kind'] == 'weight' and r.get('method') == 'dm3d'
                   and r.get('allocation')), key=lambda r: -r['budget'])
    if not rows:
        return None
    plt = _pyplot()
    names = [a['name'] for a in max((r['allocation'] for r in rows), key=len)]
    fig, ax = plt.subplots(figsize=(max(6, 0.32 * len(names)), 3.8))
    for r in rows:
        pruned = {a['name']: a['pruned'] for a in r['allocation']}
        ax.plot(range(len(names)), [100 * pruned.get(n, 0) for n in names], marker='o',
                markersize=3, label=f"{r['budget']:.2f} of FLOPs{_variant_label(r)}")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=6)
    ax.set_ylabel('weights pruned (%)')
    ax.set_ylim(0, 100)
    return _finish(plt, fig, ax, f'{detector}: DM3D layer-wise sparsity', path)
