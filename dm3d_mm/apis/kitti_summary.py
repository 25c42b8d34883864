"""Compact per-class KITTI AP summaries (3D and BEV, AP40, strict IoU) for tools and notes."""
from typing import Dict, Optional

CLASSES = ('Car', 'Pedestrian', 'Cyclist')
LEVELS = ('easy', 'moderate', 'hard')


def moderate_map(summary: Dict[str, Dict[str, float]]) -> Optional[float]:
    """Mean over ``CLASSES`` of the moderate AP of a :func:`summarize_kitti_metrics`
    summary (the demo tables' mAP; None where a class is missing).

    Args:
        summary (dict): class -> level -> AP.
    """
    vals = [summary.get(c, {}).get('moderate') for c in CLASSES]
    return None if any(v is None for v in vals) else sum(vals) / len(CLASSES)


def summarize_kitti_metrics(metrics: Dict[str, float], kind: str = '3D') -> Dict:
    """{class: {level: AP}} from KittiMetric's flat keys (…/KITTI/Car_3D_AP40_easy_strict)."""
    short = {k.split('/')[-1]: float(v) for k, v in metrics.items()}
    out = {}
    for cls in CLASSES:
        row = {lvl: short.get(f'{cls}_{kind}_AP40_{lvl}_strict') for lvl in LEVELS}
        if any(v is not None for v in row.values()):
            out[cls] = row
    return out


def kitti_ap_table(summary: Dict, title: str = '3D AP40 (strict IoU: Car 0.7, others 0.5)',
                   with_map: bool = False) -> str:
    """A markdown table of a summarize_kitti_metrics() result.

    Args:
        summary (dict): {class: {level: AP}}.
        title (str): the first header cell.
        with_map (bool): a last row with the mean over the classes per level.
            Defaults to False.
    """
    lines = [f'| {title} | ' + ' | '.join(LEVELS) + ' |',
             '|---|' + '---:|' * len(LEVELS)]
    for cls, row in summary.items():
        cells = ['-' if row[lvl] is None else f'{row[lvl]:.2f}' for lvl in LEVELS]
        lines.append(f'| {cls} | ' + ' | '.join(cells) + ' |')
    if with_map and summary:
        means = []
        for lvl in LEVELS:
            vals = [row[lvl] for row in summary.values()]
            means.append('-' if None in vals else f'{sum(vals) / len(vals):.2f}')
        lines.append(f'| mAP ({len(summary)} classes) | ' + ' | '.join(means) + ' |')
    return '\n'.join(lines)


def metrics_summary(metrics: Dict[str, float]) -> str:
    """What a test run ends with: the KITTI 3D AP40 table (easy / moderate / hard per class
    and their mAP) where the metrics are KittiMetric's, else every metric whose name holds
    'mAP' or 'NDS' (nuScenes), one per line."""
    summary = summarize_kitti_metrics(metrics)
    if summary:
        return kitti_ap_table(summary, with_map=True)
    keys = [k for k in metrics if 'mAP' in k or 'NDS' in k] or list(metrics)[:10]
    return '\n'.join(f'{k}: {float(metrics[k]):.4f}' for k in keys)
