"""Markdown tables in the DM3D paper's layouts (Tab. 4, 5, 6) and the AP-vs-FLOPs plot
(Fig. 1) from ablation results."""
from typing import Dict, List

CLASSES = ('Car', 'Pedestrian', 'Cyclist')


def _rows(results: Dict) -> List[Dict]:
    return [r for k, r in results.items() if not k.startswith('_')]


def _ap_cells(r) -> str:
    return ' | '.join(f"{r['ap'][c]['moderate']:.1f}" for c in CLASSES) + f" | {r['mAP']:.1f}"


def table_spatial_weight(results: Dict) -> str:
    """Tab. 6 / Fig. 1 layout: dense, spatial, weight, spatial + weight."""
    lines = ['| variant | weight budget | joint GMACs/frame | FLOPs vs dense | Car | Ped | Cyc '
             '| mAP |', '|---|---:|---:|---:|---:|---:|---:|---:|']
    order = {'dense': 0, 'spatial': 1, 'weight': 2, 'spatial + weight': 3}
    for r in sorted(_rows(results), key=lambda r: (order[r['kind']], -(r['budget'] or 1))):
        if r['parts'] != 'all' or r['estimator'] != 'fisher':
            continue
        budget = '-' if r['budget'] is None else f"{r['budget']:.2f}"
        lines.append(f"| {r['kind']} | {budget} | {r['gmacs']:.3f} | {r['flops_ratio']:.3f} | "
                     f'{_ap_cells(r)} |')
    return '\n'.join(lines)


def _weight_cells_by(results: Dict, field: str, fixed: Dict, header: str) -> str:
    """Weight-only cells that differ in ``field`` (others as in ``fixed``), one row each."""
    rows = [r for r in _rows(results) if r['kind'] == 'weight'
            and all(r[k] == v for k, v in fixed.items())]
    if len({r[field] for r in rows}) < 2:
        return ''
    lines = [f'| {header} | budget | FLOPs vs dense | Car | Ped | Cyc | mAP |',
             '|---|---:|---:|---:|---:|---:|---:|']
    for r in sorted(rows, key=lambda r: (-r['budget'], r[field])):
        lines.append(f"| {r[field]} | {r['budget']:.2f} | {r['flops_ratio']:.3f} | "
                     f'{_ap_cells(r)} |')
    return '\n'.join(lines)


def table_parts(results: Dict) -> str:
    """Tab. 4 layout: which parts are weight-pruned."""
    table = _weight_cells_by(results, 'parts', dict(estimator='fisher'), 'parts pruned')
    return table and table + ("\n\nbudget: fraction of the pruned part's own joint FLOPs "
                              "(all: of the whole detector's)")


def table_estimators(results: Dict) -> str:
    """Tab. 5 layout: Hessian (fisher) against actual distortion curves."""
    return _weight_cells_by(results, 'estimator', dict(parts='all'), 'distortion curves')


def plot_ap_vs_flops(results: Dict, path: str) -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for kind, marker in (('dense', '*'), ('spatial', 's'), ('weight', 'o'),
                         ('spatial + weight', '^')):
        rows = sorted((r for r in _rows(results) if r['kind'] == kind and r['parts'] == 'all'
                       and r['estimator'] == 'fisher'), key=lambda r: r['flops_ratio'])
        if rows:
            ax.plot([r['flops_ratio'] for r in rows], [r['mAP'] for r in rows],
                    marker=marker, label=kind)
    ax.set_xlabel('joint FLOPs / dense')
    ax.set_ylabel('val mAP (moderate, 3D AP40)')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
