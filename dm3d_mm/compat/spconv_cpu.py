"""spconv 2.x CPU-backward fix.

spconv's backward ops ask ``torch.cuda.current_stream()`` for a stream handle before they
take their CPU path, which raises "Torch not compiled with CUDA enabled" on a CPU build of
torch. The CPU kernels ignore the stream, so handing them 0 when CUDA is absent is exact.
The patch is applied only when CUDA is unavailable and is idempotent.

Second fix: spconv's CPU gather-GEMM-scatter (``ops.indice_conv`` and its backward) gives
wrong values at a few output sites, differently from run to run, when torch runs it with
more than one thread (seen on strided SparseConv3d with thousands of voxels: ~4 of 8000
sites per call off by O(1)). Running those two ops single-threaded makes them exact again.

Two fixes for spconv's CUDA builds (``spconv-cu1xx``), which give every conv an implicit-GEMM
algorithm at construction:

- that algorithm has no CPU kernel ("implicit gemm only support cuda"), so a model built on
  the CPU of a GPU machine (``--device cpu``, CPU-vs-CUDA comparisons) cannot run: such a
  conv given CPU features runs spconv's Native algorithm for that call (the CPU build's only
  one; the weight layout is the same, KRSC, for every algorithm);
- in eval mode its CUDA forward calls the implicit-GEMM kernel directly, outside autograd, so
  the outputs of a detector in eval mode carry no gradient to any sparse conv weight: DM3D's
  calibration (eval-mode outputs, differentiated) then saw no sparse encoder layer on CUDA.
  With gradients enabled such a conv takes spconv's training path (the same outputs, through
  its autograd function) for that call.
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


def _with_setting(module, name: str, value, call):
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        return call()
    finally:
        setattr(module, name, saved)


def _cuda_build_fixes(forward):
    """``forward`` of a CUDA build's conv: Native on CPU features; the autograd (training)
    path when gradients are enabled in eval mode on CUDA (see the module docstring)."""
    from spconv.core import ConvAlgo

    @functools.wraps(forward)
    def wrapper(self, input):
        if self.algo == ConvAlgo.Native:
            return forward(self, input)
        if not input.features.is_cuda:
            return _with_setting(self, 'algo', ConvAlgo.Native, lambda: forward(self, input))
        if not self.training and torch.is_grad_enabled():
            return _with_setting(self, 'training', True, lambda: forward(self, input))
        return forward(self, input)
    wrapper.dm3d_cuda_build_fixes = True
    return wrapper


def patch_spconv_cuda_build() -> bool:
    """With a CUDA build of spconv, let its convs run CPU features (Native algorithm) and
    carry gradients in eval mode (see the module docstring). Idempotent; returns whether the
    patch is active (False for a CPU-only build, whose only algorithm is Native)."""
    try:
        from spconv.constants import ALL_WEIGHT_IS_KRSC
        from spconv.cppconstants import CPU_ONLY_BUILD
        from spconv.pytorch.conv import SparseConvolution
    except ImportError:
        return False
    if CPU_ONLY_BUILD or not ALL_WEIGHT_IS_KRSC:
        return False
    if not getattr(SparseConvolution.forward, 'dm3d_cuda_build_fixes', False):
        SparseConvolution.forward = _cuda_build_fixes(SparseConvolution.forward)
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
