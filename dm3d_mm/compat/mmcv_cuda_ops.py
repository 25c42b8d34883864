"""CUDA tensors with an mmcv built without its CUDA kernels.

mmcv built from source on a machine without a GPU (``FORCE_CUDA=0``: the CPU install of this
project) has CPU kernels only; given CUDA tensors its ops raise "not compiled with GPU
support". A detector on a GPU meets two of them in mmdet3d's own code: the rotated and axis-
aligned NMS of ``mmdet3d.models.layers.box3d_nms`` (every 3D head's post-processing) and the
hard voxelization of the data preprocessor (handled by
:mod:`dm3d_mm.models.sort_voxelization`, which computes the same voxels in torch on the GPU).

When torch has CUDA and mmcv has no CUDA kernels, the two NMS functions run on a CPU copy of
CUDA inputs and hand their outputs back on the inputs' device: the same kept boxes, a
host round trip of a few hundred boxes per frame. With an mmcv built with CUDA nothing is
patched.
"""
import functools
import importlib

import torch

_NMS_MODULE = 'mmdet3d.models.layers.box3d_nms'
_NMS_FUNCTIONS = ('nms', 'nms_rotated')


@functools.lru_cache(maxsize=None)
def mmcv_has_cuda_ops() -> bool:
    """Whether mmcv's compiled ops were built with their CUDA kernels."""
    try:
        from mmcv.utils import ext_loader
        ext = ext_loader.load_ext('_ext', ['get_compiling_cuda_version'])
    except (ImportError, AssertionError):
        return False
    return ext.get_compiling_cuda_version() != 'not available'


def cuda_without_mmcv_kernels() -> bool:
    """Whether CUDA tensors can reach an mmcv op that has no CUDA kernel: torch has CUDA and
    mmcv was built without its CUDA ops (then the CPU fallbacks are needed)."""
    return torch.cuda.is_available() and not mmcv_has_cuda_ops()


def _move(value, device):
    if torch.is_tensor(value):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_move(v, device) for v in value)
    return value


def run_on_cpu_copy(fn):
    """Wrap ``fn`` so that CUDA tensor arguments go through it as CPU copies and its tensor
    outputs come back on the first argument's device."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not (args and torch.is_tensor(args[0]) and args[0].is_cuda):
            return fn(*args, **kwargs)
        device = args[0].device
        out = fn(*_move(args, 'cpu'), **{k: _move(v, 'cpu') for k, v in kwargs.items()})
        return _move(out, device)
    wrapper.dm3d_cpu_copy = True
    return wrapper


def patch_mmcv_cpu_nms() -> bool:
    """Route mmdet3d's NMS calls with CUDA inputs through mmcv's CPU kernels when mmcv has
    no CUDA kernels (see the module docstring). Idempotent; returns whether the patch is
    active."""
    if not cuda_without_mmcv_kernels():
        return False
    try:
        module = importlib.import_module(_NMS_MODULE)
    except ImportError:
        return False
    for name in _NMS_FUNCTIONS:
        fn = getattr(module, name)
        if not getattr(fn, 'dm3d_cpu_copy', False):
            setattr(module, name, run_on_cpu_copy(fn))
    return True
