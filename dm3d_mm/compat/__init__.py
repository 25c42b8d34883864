"""Small fixes that make the dependency stack usable as pinned (CPU torch, current numpy, an
mmcv built without CUDA kernels on a GPU)."""
from .kitti_eval_cpu import patch_kitti_rotate_iou, rotate_iou_cpu_eval
from .mmcv_cuda_ops import mmcv_has_cuda_ops, patch_mmcv_cpu_nms
from .numpy_aliases import patch_numpy_aliases
from .spconv_cpu import patch_spconv_cpu_backward, patch_spconv_cpu_threads, patch_spconv_cuda_build
from .torch_load import allow_mmengine_checkpoints


def apply_all():
    """Apply every compatibility fix (each is idempotent and a no-op when not needed)."""
    patch_numpy_aliases()
    patch_spconv_cpu_backward()
    patch_spconv_cpu_threads()
    patch_spconv_cuda_build()
    patch_kitti_rotate_iou()
    allow_mmengine_checkpoints()
    patch_mmcv_cpu_nms()


__all__ = ['allow_mmengine_checkpoints', 'apply_all', 'mmcv_has_cuda_ops',
           'patch_kitti_rotate_iou', 'patch_mmcv_cpu_nms', 'patch_numpy_aliases',
           'patch_spconv_cpu_backward', 'patch_spconv_cpu_threads', 'patch_spconv_cuda_build',
           'rotate_iou_cpu_eval']
