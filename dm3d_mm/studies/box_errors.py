"""Where a detector's boxes go wrong: per class, the errors of the detections matched to GT
boxes (same class, BEV centre within ``radius`` metres, the nearest above ``score_thr``), in
x/y, in z (gravity centre) and in box height. A model whose BEV AP holds while its 3D AP falls
shows it here as a z bias."""
from typing import Dict, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import UserError

ERROR_KEYS = ('dxy', 'dz', 'abs_dz', 'dh', 'abs_dh')


def matched_box_errors(model: nn.Module, batches: Sequence[dict], score_thr: float = 0.3,
                       radius: float = 1.0) -> Dict[str, Dict[str, float]]:
    """Per class name: ``n`` (GT boxes matched), the mean BEV centre distance ``dxy``, the
    mean signed and absolute z-centre errors ``dz`` / ``abs_dz`` (prediction minus GT) and
    box height errors ``dh`` / ``abs_dh``, in metres, over ``batches`` (val frames through the
    test pipeline, with their annotations)."""
    if radius <= 0:
        raise UserError(f'radius must be > 0 metres, got {radius}')
    classes = list((getattr(model, 'dataset_meta', None) or {}).get('classes') or [])
    rows = {}
    for batch in batches:
        with torch.no_grad():
            results = model.test_step(batch)
        for sample, result in zip(batch['data_samples'], results):
            ann = sample.eval_ann_info or {}
            if 'gt_bboxes_3d' not in ann:
                raise UserError('matched_box_errors needs frames with annotations '
                                 '(eval_ann_info.gt_bboxes_3d): use the val split')
            gt, labels = ann['gt_bboxes_3d'], np.asarray(ann['gt_labels_3d'])
            pred = result.pred_instances_3d
            keep = pred.scores_3d > score_thr
            pb, pl = pred.bboxes_3d[keep], pred.labels_3d[keep].cpu()
            p_xyz, p_h = pb.gravity_center.cpu(), pb.tensor[:, 5].cpu()
            g_xyz, g_h = gt.gravity_center.cpu(), gt.tensor[:, 5].cpu()
            for i, label in enumerate(labels.tolist()):
                same = torch.nonzero(pl == label).flatten()
                if len(same) == 0:
                    continue
                dist = (p_xyz[same, :2] - g_xyz[i, :2]).norm(dim=1)
                j = int(dist.argmin())
                if dist[j] >= radius:
                    continue
                k = int(same[j])
                dz = float(p_xyz[k, 2] - g_xyz[i, 2])
                dh = float(p_h[k] - g_h[i])
                rows.setdefault(label, []).append((float(dist[j]), dz, abs(dz), dh, abs(dh)))
    out = {}
    for label in sorted(rows):
        arr = np.asarray(rows[label])
        name = classes[label] if label < len(classes) else str(label)
        out[name] = dict(n=len(arr), **{k: float(v) for k, v in zip(ERROR_KEYS, arr.mean(0))})
    return out


def box_error_table(errors: Dict[str, Dict[str, float]]) -> str:
    """Markdown table of :func:`matched_box_errors`' result."""
    lines = ['| class | matched | BEV centre dist (m) | z mean (m) | |z| mean (m) | '
             'height mean (m) | |height| mean (m) |', '|---|---:|---:|---:|---:|---:|---:|']
    for name, e in errors.items():
        lines.append(f"| {name} | {e['n']} | {e['dxy']:.3f} | {e['dz']:+.3f} | "
                     f"{e['abs_dz']:.3f} | {e['dh']:+.3f} | {e['abs_dh']:.3f} |")
    return '\n'.join(lines)
