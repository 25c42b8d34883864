"""What a GPU would wait on: the aten ops a forward dispatches and, among them, those that
synchronise the host with the device (the host needs a value or a size that only the device
knows), counted on any device with a ``TorchDispatchMode``.

Counted as host syncs: ``_local_scalar_dense`` (``.item()``, ``bool(tensor)``, ``int(t)``),
``is_nonzero``, ``nonzero``, the ``unique`` family, ``masked_select``, ``bincount`` (its output
size is the data's maximum), ``repeat_interleave`` without ``output_size``, ``equal``, and
indexing or index assignment with a boolean mask (``x[mask]``, ``x[mask] = v``: the kept count
decides the shape). Copies to the host, which dispatch no aten op on a CPU tensor, are seen
as the tensor methods called (``.tolist()``, ``.numpy()``, ``.cpu()``, ``.to('cpu')``) and
counted too: on a GPU each is a device-to-host copy that waits (on a tensor already on the
host it would not be; the count cannot tell), ``t.cpu().tolist()`` once. Not seen: work
outside torch (spconv's and mmcv's compiled ops, their own syncs).
"""
import sys
import weakref
from collections import Counter
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

#: ops that always wait for the device
ALWAYS = frozenset({
    'aten._local_scalar_dense', 'aten.is_nonzero', 'aten.nonzero', 'aten._unique',
    'aten._unique2', 'aten.unique_dim', 'aten.unique_consecutive', 'aten.masked_select',
    'aten.bincount', 'aten.equal'})


#: tensor methods that copy to the host (a wait on a GPU), by the name they are counted under
HOST_COPIES = {torch.Tensor.tolist: 'Tensor.tolist', torch.Tensor.numpy: 'Tensor.numpy',
               torch.Tensor.cpu: 'Tensor.cpu'}


def _to_host(args, kwargs) -> bool:
    """Whether ``Tensor.to(*args, **kwargs)`` moves the tensor to the CPU."""
    targets = list(args[1:]) + [(kwargs or {}).get('device')]
    return any(isinstance(t, (str, torch.device)) and torch.device(t).type == 'cpu'
               for t in targets)


def _packet(func) -> str:
    """``aten.nonzero`` of ``aten.nonzero.default``."""
    return '.'.join(str(func).split('.')[:2])


def _bool_index(indices) -> bool:
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)
               for i in indices or ())


def is_host_sync(func, args, kwargs) -> bool:
    """Whether the aten op ``func`` called with ``args`` / ``kwargs`` waits for the device
    (see the module docstring)."""
    name = _packet(func)
    if name in ALWAYS:
        return True
    if name == 'aten.repeat_interleave':
        return (kwargs or {}).get('output_size') is None
    if name in ('aten.index', 'aten.index_put', 'aten.index_put_', 'aten._index_put_impl_'):
        return len(args) > 1 and _bool_index(args[1])
    return False


@dataclass
class HostSyncCount:
    """Ops and host syncs of the forwards run under a :class:`HostSyncCounter`.

    Args:
        ops (Counter): aten op packet -> calls.
        syncs (Counter): aten op packet -> calls that synchronised the host.
        frames (int): the frames the forwards processed.
        sites (Counter): ``file:line`` of the Python code that issued each sync (its
            innermost frame outside torch), where the counter was asked for them.
    """
    ops: Counter = field(default_factory=Counter)
    syncs: Counter = field(default_factory=Counter)
    frames: int = 0
    sites: Counter = field(default_factory=Counter)

    def per_frame(self) -> Dict[str, float]:
        """``ops`` and ``syncs`` per frame."""
        n = max(self.frames, 1)
        return dict(ops=sum(self.ops.values()) / n, syncs=sum(self.syncs.values()) / n)


def _issuer() -> str:
    """``file:line`` of the innermost Python frame outside torch (who asked for the op)."""
    frame = sys._getframe(2)
    while frame is not None and ('/torch/' in frame.f_code.co_filename or
                                 frame.f_code.co_filename.endswith('host_syncs.py')):
        frame = frame.f_back
    if frame is None:
        return '?'
    path = frame.f_code.co_filename
    short = path.split('site-packages/')[-1].split('dm3d_mm/')[-1]
    return f'{short}:{frame.f_lineno}'


class _HostCopies(TorchFunctionMode):
    """The tensor methods of :data:`HOST_COPIES` (and ``.to`` the CPU), told to ``counter``."""

    def __init__(self, counter: 'HostSyncCounter'):
        super().__init__()
        self.counter = counter
        # id -> weakref of the last copies' results: their next read (``.tolist()``) is free
        self.copied = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = HOST_COPIES.get(func)
        if name is None and func is torch.Tensor.to and _to_host(args, kwargs):
            name = 'Tensor.to'
        out = func(*args, **(kwargs or {}))
        if name is None:
            return out
        if func in (torch.Tensor.tolist, torch.Tensor.numpy) and self._copied(args[0]):
            del self.copied[id(args[0])]  # read on the host after its counted copy
        else:
            self.counter.add_sync(name)
            if isinstance(out, torch.Tensor):  # the entry goes with the tensor
                key = id(out)
                self.copied[key] = weakref.ref(out, lambda _, key=key: self.copied.pop(key, None))
        return out

    def _copied(self, tensor) -> bool:
        ref = self.copied.get(id(tensor))
        return ref is not None and ref() is tensor


class HostSyncCounter(TorchDispatchMode):
    """Counts the aten ops dispatched inside the ``with`` block and the host syncs among
    them (:func:`is_host_sync`), and the copies to the host (:data:`HOST_COPIES`), into
    ``self.count``.

    Args:
        where (bool): also count the code line that issued each sync
            (``HostSyncCount.sites``). Defaults to False.
    """

    def __init__(self, where: bool = False):
        super().__init__()
        self.count = HostSyncCount()
        self.where = where
        self._copies = _HostCopies(self)

    def __enter__(self):
        self._copies.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._copies.__exit__(*exc)

    def add_sync(self, name: str) -> None:
        """Count one host sync of the op or method ``name`` (and its code line if asked)."""
        self.count.syncs[name] += 1
        if self.where:
            self.count.sites[f'{_issuer()} {name.split(".")[-1]}'] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = _packet(func)
        self.count.ops[name] += 1
        if is_host_sync(func, args, kwargs):
            self.add_sync(name)
        return func(*args, **(kwargs or {}))


@contextmanager
def cuda_code_path(model: torch.nn.Module):
    """Inside the block, ``model`` takes the code path it takes on CUDA wherever a module
    has a CPU-only one: SPS-Conv's rulebooks built in torch (``rulebook_backend='torch'``),
    not decoded from spconv's CPU rulebook.

    Args:
        model (nn.Module): the detector; its modules are restored on exit.
    """
    switched = [m for m in model.modules() if getattr(m, 'rulebook_backend', None) == 'spconv']
    for m in switched:
        m.rulebook_backend = 'torch'
    try:
        yield model
    finally:
        for m in switched:
            m.rulebook_backend = 'spconv'


@torch.no_grad()
def count_host_syncs(model: torch.nn.Module, batches: Sequence[dict],
                     where: Optional[bool] = False, cuda_path: bool = True) -> HostSyncCount:
    """The ops and host syncs of ``model.test_step`` on each of ``batches`` (one frame each,
    as ``pseudo_collate`` gives them), one untimed warm-up forward first (lazy set-up, caches).

    Args:
        model (nn.Module): an mmdet3d detector.
        batches (Sequence[dict]): the frames.
        where (bool): also count the code line of each sync. Defaults to False.
        cuda_path (bool): count the code path a CUDA run takes (:func:`cuda_code_path`),
            which is what a GPU waits on; False: the path the model takes here. Defaults to
            True.

    Returns:
        HostSyncCount: totals over the frames (``per_frame()`` divides).
    """
    was_training = model.training
    model.eval()
    try:
        with cuda_code_path(model) if cuda_path else nullcontext():
            model.test_step(batches[0])
            counter = HostSyncCounter(where=bool(where))
            with counter:
                for batch in batches:
                    model.test_step(batch)
        counter.count.frames = len(batches)
        return counter.count
    finally:
        model.train(was_training)
