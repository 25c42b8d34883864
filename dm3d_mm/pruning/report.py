"""Human-readable pruning reports: a markdown table and the layer-wise sparsity plot
(the layout of the DM3D paper's Fig. 4)."""
from typing import Dict, Optional

from .result import PruneResult, budget_line


def _rerank_lines(sp: dict) -> list:
    """What the re-rank probed (least objective first) and which it chose."""
    if not sp.get('rerank'):
        return []
    return [f"- re-ranked by {sp['rerank']['type']} ({sp['rerank']}): the "
            f"{len(sp['probed'])} combinations of least objective, distortion after the "
            'probe: ' + '; '.join(
                f"{', '.join(f'{v:g}' for v in p['ratios'].values())}: objective "
                f"{p['objective']:.4g} -> {p['probe']:.4g}"
                + (' (chosen)' if p['ratios'] == sp['keep_ratios'] else '')
                for p in sp['probed'])]


def markdown_report(result: PruneResult, extra: Optional[Dict] = None) -> str:
    """The pruning report in markdown: first the budget (the target, its reference and that
    reference's cost; OVER BUDGET where the pruned model does not fit), then the counts,
    distortions, spatial choice, timings and the per-layer table.

    Args:
        result (PruneResult): what the pruner returned.
        extra (dict, optional): more ``- key: value`` lines. Defaults to None.

    Returns:
        str: the report.
    """
    est = f', estimator {result.estimator}' if result.estimator else ''
    info = result.info()
    status = 'within budget' if result.fits else 'OVER BUDGET'
    lines = [f'# Pruning report: {result.method}{est}', '',
             f'**{status}**: {budget_line(info)}', '',
             f'- joint MACs per frame: {result.macs_before / 1e9:.4f} G -> '
             f'{result.macs_after / 1e9:.4f} G (achieved {result.achieved_ratio:.4f}; floor '
             f'of unpruned layers {result.floor / 1e9:.4f} G); counted on the pruned model '
             'over the calibration frames' + (
                 f', the dense pass predicted {result.macs_after_predicted / 1e9:.4f} G'
                 if result.macs_after_predicted is not None else '') + (
                 f"; {result.cost['allocations']} allocations until the count fitted"
                 if result.cost.get('allocations', 1) > 1 else ''),
             *([f"- measured latency the budget counted (test_step, this device): "
                f"{result.cost['before'] * 1e3:.2f} ms -> {result.cost['after'] * 1e3:.2f} ms "
                f"per frame ({result.cost['after'] / result.cost['before']:.3f} of the "
                "reference; the pruned model timed as it will run, slim where channels were "
                "removed)"]
               if result.cost.get('unit') == 'seconds' else []),
             f'- measured output distortion on the calibration frames: '
             f'{result.measured_distortion:.6g}' + (
                 f' (predicted {result.predicted_distortion:.6g})'
                 if result.predicted_distortion is not None else '')]
    gap = result.distortion_gap
    if gap is not None:
        lines.append(f'- **distortion gap**: the measured distortion is {gap:.1f}x the '
                     'predicted one (flagged above 3x): the curves\' additive second-order '
                     'model does not hold at this sparsity, so the allocation may be far from '
                     'optimal; expect a larger accuracy loss than predicted')
    sp = result.spatial or {}
    if sp:
        lines += [f"- joint allocation over {len(sp['combinations'])} keep-ratio combinations; "
                  f"every site's largest candidate: {sp['largest']}",
                  f"- predicted distortion {sp['predicted_distortion']:.6g} = spatial "
                  f"{sp['spatial_distortion']:.6g} + weights {sp['weight_distortion']:.6g}"
                  + ('' if sp['objective'] == sp['predicted_distortion'] else
                     f"; the objective minimised {sp['objective']:.6g}"),
                  *_rerank_lines(sp),
                  *(['- the coordinate search stopped at max_sweeps still moving: a change '
                     'of one site may still improve the choice']
                    if sp.get('search_converged') is False else []),
                  '', '| spatial site | keep ratio as trained | chosen keep ratio |',
                  '|---|---:|---:|']
        lines += [f"| {n} | {sp['trained_keep_ratios'].get(n, 1.0):.3g} | {r:.3g} |"
                  for n, r in sp['keep_ratios'].items()]
        lines.append('')
    for k, v in (extra or {}).items():
        lines.append(f'- {k}: {v}')
    if result.timings:
        lines.append('- time (s): ' + ', '.join(f'{k} {v:.2f}'
                                                for k, v in result.timings.items()))
    lines += ['', '| layer | part | weights | pruned | GMACs before | GMACs after | predicted '
              'distortion |', '|---|---|---:|---:|---:|---:|---:|']
    for lr in result.layers:
        pd = '-' if lr.predicted_distortion is None else f'{lr.predicted_distortion:.4g}'
        lines.append(f'| {lr.name} | {lr.part} | {lr.numel} | {100 * lr.ratio:.1f}% | '
                     f'{lr.macs_before / 1e9:.5f} | {lr.macs_after / 1e9:.5f} | {pd} |')
    return '\n'.join(lines) + '\n'


def sparsity_plot(result: PruneResult, path: str):
    """Bar chart of the pruned fraction per layer, coloured by part."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    parts = sorted({lr.part for lr in result.layers})
    colours = {p: plt.cm.tab10(i) for i, p in enumerate(parts)}
    fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(result.layers)), 3.5))
    ax.bar(range(len(result.layers)), [100 * lr.ratio for lr in result.layers],
           color=[colours[lr.part] for lr in result.layers])
    ax.set_xticks(range(len(result.layers)))
    ax.set_xticklabels([lr.name for lr in result.layers], rotation=90, fontsize=6)
    ax.set_ylabel('weights pruned (%)')
    ax.set_ylim(0, 100)
    ax.set_title(f'{result.method} at {result.achieved_ratio:.2f} of dense FLOPs')
    for p in parts:
        ax.bar([], [], color=colours[p], label=p)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
