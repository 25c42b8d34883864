"""spconv 2.x CPU-backward fix.

spconv's backward ops ask ``torch.cuda.current_stream()`` for a stream handle before they
take their CPU path, which raises "Torch not compiled with CUDA enabled" on a CPU build of
torch. The CPU kernels ignore the stream, so handing them 0 when CUDA is absent is exact.
The patch is applied only when CUDA is unavailable and is idempotent.
"""
import importlib

import torch

_PATCHED_MODULES = ('spconv.pytorch.ops', 'spconv.pytorch.hash')


def _cpu_stream() -> int:
    """Stream handle for the CPU path: spconv's CPU kernels do not use it."""
    return 0


def patch_spconv_cpu_backward(force: bool = False) -> bool:
    """Make spconv's ops use stream 0 when torch has no CUDA.

    Returns True when the patch is (now) active, False when CUDA is present (nothing to do)
    or spconv is not installed.
    """
    if torch.cuda.is_available() and not force:
        return False
    try:
        modules = [importlib.import_module(name) for name in _PATCHED_MODULES]
    except ImportError:
        return False
    for module in modules:
        if getattr(module, 'get_current_stream', None) is not _cpu_stream:
            module.get_current_stream = _cpu_stream
    return True
