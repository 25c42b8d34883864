"""spconv 2.x CPU-backward fix.

spconv's backward ops ask ``torch.cuda.current_stream()`` for a stream handle before they
take their CPU path, which raises "Torch not compiled with CUDA enabled" on a CPU build of
torch. The CPU kernels ignore the stream, so handing them 0 when CUDA is absent is exact.
The patch is applied only when CUDA is unavailable and is idempotent.

Second fix: spconv's CPU gather-GEMM-scatter (``ops.indice_conv`` and its backward) gives
wrong values at a few output sites, differently from run to run, when torch runs it with
more than one thread (seen on strided SparseConv3d with thousands of voxels: ~4 of 8000
sites per call off by O(1)). Running those two ops single-threaded makes them exact again.

Third fix: spconv's CUDA builds (``spconv-cu1xx``) give every conv an implicit-GEMM algorithm
at construction, which has no CPU kernel ("implicit gemm only support cuda"), so a model
built on the CPU of a GPU machine (``--device cpu``, CPU-vs-CUDA comparisons) cannot run.
Such a conv given CPU features runs spconv's Native algorithm for that call (the CPU build's
only one; the weight layout is the same, KRSC, for every algorithm).
"""
import functools
import importlib

import torch

_PATCHED_MODULES = ('spconv.pytorch.ops', 'spconv.pytorch.hash')


def _cpu_stream() -> int:
    """Stream handle for the CPU path: spconv's CPU kernels do not use it."""
    return 0


def _single_threaded_on_cpu(fn):
    """Run ``fn`` with one torch thread when its features live on the CPU."""
    @functools.wraps(fn)
    def wrapper(features, *args, **kwargs):
        if features.is_cuda or torch.get_num_threads() == 1:
            return fn(features, *args, **kwargs)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(features, *args, **kwargs)
        finally:
            torch.set_num_threads(threads)
    wrapper.dm3d_single_threaded = True
    return wrapper


def patch_spconv_cpu_threads() -> bool:
    """Serialise spconv's CPU indice conv forward and backward (see the module docstring)."""
    try:
        ops = importlib.import_module('spconv.pytorch.ops')
    except ImportError:
        return False
    for name in ('indice_conv', 'indice_conv_backward'):
        fn = getattr(ops, name)
        if not getattr(fn, 'dm3d_single_threaded', False):
            setattr(ops, name, _single_threaded_on_cpu(fn))
    return True


def _native_on_cpu(forward):
    """Run ``forward`` with spconv's Native algorithm when the features are on the CPU."""
    from spconv.core import ConvAlgo

    @functools.wraps(forward)
    def wrapper(self, input):
        if input.features.is_cuda or self.algo == ConvAlgo.Native:
            return forward(self, input)
        algo, self.algo = self.algo, ConvAlgo.Native
        try:
            return forward(self, input)
        finally:
            self.algo = algo
    wrapper.dm3d_native_on_cpu = True
    return wrapper


def patch_spconv_native_on_cpu() -> bool:
    """With a CUDA build of spconv, let its convs run CPU features with the Native algorithm
    (see the module docstring). Idempotent; returns whether the patch is active (False for a
    CPU-only build, where Native is the only algorithm already)."""
    try:
        from spconv.constants import ALL_WEIGHT_IS_KRSC
        from spconv.cppconstants import CPU_ONLY_BUILD
        from spconv.pytorch.conv import SparseConvolution
    except ImportError:
        return False
    if CPU_ONLY_BUILD or not ALL_WEIGHT_IS_KRSC:
        return False
    if not getattr(SparseConvolution.forward, 'dm3d_native_on_cpu', False):
        SparseConvolution.forward = _native_on_cpu(SparseConvolution.forward)
    return True


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
