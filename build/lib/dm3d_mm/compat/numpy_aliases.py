"""numpy alias fix for mmdet3d 1.4.

mmdet3d 1.4.0's ground-truth database sampler (ObjectSample) builds arrays with
``dtype=np.long``, an alias numpy removed in 1.24, so every KITTI config that samples the
GT database fails on a current numpy. Restoring the alias as int64 (what it meant on
64-bit Linux) is exact; nothing is changed when numpy still has it.
"""
import numpy as np


def patch_numpy_aliases() -> bool:
    """Restore ``np.long``; returns True when the alias had to be added."""
    if 'long' in np.__dict__:
        return False
    np.long = np.int64
    return True
