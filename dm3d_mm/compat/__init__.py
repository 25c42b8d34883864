"""Small fixes that make the dependency stack usable as pinned (CPU torch, current numpy)."""
from .kitti_eval_cpu import patch_kitti_rotate_iou, rotate_iou_cpu_eval
from .numpy_aliases import patch_numpy_aliases
from .spconv_cpu import patch_spconv_cpu_backward, patch_spconv_cpu_threads
from .torch_load import allow_mmengine_checkpoints


def apply_all():
    """Apply every compatibility fix (each is idempotent and a no-op when not needed)."""
    patch_numpy_aliases()
    patch_spconv_cpu_backward()
    patch_spconv_cpu_threads()
    patch_kitti_rotate_iou()
    allow_mmengine_checkpoints()


__all__ = ['allow_mmengine_checkpoints', 'apply_all', 'patch_kitti_rotate_iou',
           'patch_numpy_aliases', 'patch_spconv_cpu_backward', 'patch_spconv_cpu_threads',
           'rotate_iou_cpu_eval']
