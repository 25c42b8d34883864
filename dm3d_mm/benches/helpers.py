"""What several benches share: a row's moderate mAP, a Spearman rank correlation, the sparse
encoder's inputs of a batch (the classes and the mAP itself: ``apis/kitti_summary.py``)."""
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from mmdet3d.models.detectors import MVXTwoStageDetector
from torch import nn

from ..apis.kitti_summary import moderate_map


def with_ap(row: dict, ap: Dict[str, Dict[str, float]]) -> dict:
    """``row`` with the summary ``ap`` and its moderate mAP (``mAP``) added.

    Args:
        row (dict): a bench row.
        ap (dict): class -> difficulty -> AP.
    """
    row.update(ap=ap, mAP=moderate_map(ap))
    return row


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation of two sequences (NaN where one is constant).

    Args:
        a (Sequence[float]): the first values.
        b (Sequence[float]): the second, one per value of ``a``.
    """
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if ra.std() == 0 or rb.std() == 0:
        return float('nan')
    return float(np.corrcoef(ra, rb)[0, 1])


def encoder_inputs(model: nn.Module, batches: Sequence[dict]
                   ) -> Tuple[nn.Module, List[tuple]]:
    """The detector's sparse 3D encoder and, per batch, what it receives: (voxel features,
    voxel coordinates, batch size); ``pts_`` parts of a two-stage (CenterPoint) detector.

    Args:
        model (nn.Module): an mmdet3d voxel detector.
        batches (Sequence[dict]): batches as a dataloader gives them.
    """
    pre = 'pts_' if isinstance(model, MVXTwoStageDetector) else ''
    vfe = getattr(model, pre + 'voxel_encoder')
    out = []
    with torch.no_grad():
        for b in batches:
            vox = model.data_preprocessor(b, False)['inputs']['voxels']
            out.append((vfe(vox['voxels'], vox['num_points'], vox['coors']), vox['coors'],
                        len(b['inputs']['points'])))
    return getattr(model, pre + 'middle_encoder'), out
