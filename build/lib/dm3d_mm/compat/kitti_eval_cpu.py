"""CPU rotated-IoU for mmdet3d's KITTI evaluation.

mmdet3d 1.4's KittiMetric computes BEV and 3D overlaps with a numba.cuda kernel
(``kitti_utils.rotate_iou.rotate_iou_gpu_eval``) that is compiled when its module is
imported, so KITTI evaluation fails on a machine without a CUDA driver. This provides the
same function on the CPU through mmcv's compiled ``box_iou_rotated`` and installs it in
place of that module, only when CUDA is unavailable.
"""
import sys
import types

import numpy as np
import torch

_TARGET = 'mmdet3d.evaluation.functional.kitti_utils.rotate_iou'


def rotate_iou_cpu_eval(boxes: np.ndarray, query_boxes: np.ndarray, criterion: int = -1,
                        device_id: int = 0) -> np.ndarray:
    """Overlaps (N, K) of BEV boxes (x, y, w, l, angle), exactly as the CUDA kernel.

    criterion -1: IoU; 0: intersection / area of the query box; 1: intersection / area of
    the box; anything else: the intersection area itself.
    """
    from mmcv.ops import box_iou_rotated
    n, k = len(boxes), len(query_boxes)
    if n == 0 or k == 0:
        return np.zeros((n, k), dtype=boxes.dtype)
    b = torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32))
    q = torch.from_numpy(np.ascontiguousarray(query_boxes, dtype=np.float32))
    area_b = (b[:, 2] * b[:, 3])[:, None]
    area_q = (q[:, 2] * q[:, 3])[None, :]
    inter = box_iou_rotated(b, q, mode='iof', aligned=False, clockwise=False) * area_b
    if criterion == -1:
        out = inter / (area_b + area_q - inter)
    elif criterion == 0:
        out = inter / area_q
    elif criterion == 1:
        out = inter / area_b
    else:
        out = inter
    return out.numpy().astype(boxes.dtype)


def patch_kitti_rotate_iou(force: bool = False) -> bool:
    """Serve rotate_iou_gpu_eval from the CPU when there is no CUDA; True when patched."""
    if torch.cuda.is_available() and not force:
        return False
    module = types.ModuleType(_TARGET, __doc__)
    module.rotate_iou_gpu_eval = rotate_iou_cpu_eval
    sys.modules[_TARGET] = module
    parent = sys.modules.get(_TARGET.rsplit('.', 1)[0])
    if parent is not None:
        setattr(parent, 'rotate_iou', module)
    return True
