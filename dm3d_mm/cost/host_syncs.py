"""What a GPU would wait on: the aten ops a forward dispatches and, among them, those that
synchronise the host with the device (the host needs a value or a size that only the device
knows), counted on any device with a ``TorchDispatchMode``.

Counted as host syncs: ``_local_scalar_dense`` (``.item()``, ``bool(tensor)``, ``int(t)``),
``is_nonzero``, ``nonzero``, the ``unique`` family, ``masked_select``, ``bincount`` (its output
size is the data's maximum), ``repeat_interleave`` without ``output_size``, ``equal``, and
indexing or index assignment with a boolean mask (``x[mask]``, ``x[mask] = v``: the kept count
decides the shape). Not seen: work outside the dispatcher (spconv's and mmcv's compiled ops,
their own syncs), ``.numpy()`` / ``.tolist()``, and device copies, which only exist on a GPU
run.
"""
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: ops that always wait for the device
ALWAYS = frozenset({
    'aten._local_scalar_dense', 'aten.is_nonzero', 'aten.nonzero', 'aten._unique',
    'aten._unique2', 'aten.unique_dim', 'aten.unique_consecutive', 'aten.masked_select',
    'aten.bincount', 'aten.equal'})


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


class HostSyncCounter(TorchDispatchMode):
    """Counts the aten ops dispatched inside the ``with`` block and the host syncs among
    them (:func:`is_host_sync`) into ``self.count``.

    Args:
        where (bool): also count the code line that issued each sync
            (``HostSyncCount.sites``). Defaults to False.
    """

    def __init__(self, where: bool = False):
        super().__init__()
        self.count = HostSyncCount()
        self.where = where

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = _packet(func)
        self.count.ops[name] += 1
        if is_host_sync(func, args, kwargs):
            self.count.syncs[name] += 1
            if self.where:
                self.count.sites[f'{_issuer()} {name.split(".")[-1]}'] += 1
        return func(*args, **(kwargs or {}))


@torch.no_grad()
def count_host_syncs(model: torch.nn.Module, batches: Sequence[dict],
                     where: Optional[bool] = False) -> HostSyncCount:
    """The ops and host syncs of ``model.test_step`` on each of ``batches`` (one frame each,
    as ``pseudo_collate`` gives them), one untimed warm-up forward first (lazy set-up, caches).

    Args:
        model (nn.Module): an mmdet3d detector.
        batches (Sequence[dict]): the frames.
        where (bool): also count the code line of each sync. Defaults to False.

    Returns:
        HostSyncCount: totals over the frames (``per_frame()`` divides).
    """
    was_training = model.training
    model.eval()
    try:
        model.test_step(batches[0])
        counter = HostSyncCounter(where=bool(where))
        with counter:
            for batch in batches:
                model.test_step(batch)
        counter.count.frames = len(batches)
        return counter.count
    finally:
        model.train(was_training)
