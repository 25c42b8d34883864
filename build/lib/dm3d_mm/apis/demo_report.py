"""Compact per-class KITTI AP summaries (3D and BEV, AP40, strict IoU) for tools and notes."""
from typing import Dict

CLASSES = ('Car', 'Pedestrian', 'Cyclist')
LEVELS = ('easy', 'moderate', 'hard')


def summarize_kitti_metrics(metrics: Dict[str, float], kind: str = '3D') -> Dict:
    """{class: {level: AP}} from KittiMetric's flat keys (…/KITTI/Car_3D_AP40_easy_strict)."""
    short = {k.split('/')[-1]: float(v) for k, v in metrics.items()}
    out = {}
    for cls in CLASSES:
        row = {lvl: short.get(f'{cls}_{kind}_AP40_{lvl}_strict') for lvl in LEVELS}
        if any(v is not None for v in row.values()):
            out[cls] = row
    return out


def kitti_ap_table(summary: Dict, title: str = '3D AP40 (strict IoU: Car 0.7, others 0.5)') -> str:
    """A markdown table of a summarize_kitti_metrics() result."""
    lines = [f'| {title} | ' + ' | '.join(LEVELS) + ' |',
             '|---|' + '---:|' * len(LEVELS)]
    for cls, row in summary.items():
        cells = ['-' if row[lvl] is None else f'{row[lvl]:.2f}' for lvl in LEVELS]
        lines.append(f'| {cls} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
