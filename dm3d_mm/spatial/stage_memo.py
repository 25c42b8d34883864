"""Sparse-encoder stage outputs kept across counted eval forwards of the same frames.

The joint allocation (``joint/search.py``) runs the calibration frames once per combination
of keep ratios. Two combinations that agree on every site up to a stage of the sparse
encoder compute the same voxels and features up to that stage, so a forward resumes from
the deepest stage whose inputs it has seen before: the frame (a digest of the encoder's
input tensors and of any tensor the stages read, such as Ada3D's importance map), the
encoder's weights and buffers (a digest of their values) and the encoder's
``stage_settings(i)`` (its spatial settings that act in stages 0..i) all equal. The work the
skipped stages did is added again to every counter counting now (``FlopsCounter.replay``),
so the counted pairs are the pairs of a full forward, exactly.

It only acts where it cannot change a result: eval mode and a counter counting (a memo
serves counted forwards); it resumes only with gradients off (a resumed prefix has no
graph) and keeps detached features.
"""
import hashlib
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple

import torch
from spconv.pytorch import SparseConvTensor
from torch import Tensor, nn

from ..cost import FlopsCounter
from ..cost.counter import CountedWork


def _digest(tensors: Sequence[Tensor]) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for t in tensors:
        t = t.detach()
        h.update(f'{t.dtype}{tuple(t.shape)}'.encode())
        h.update(t.to('cpu').contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.digest()


def _detached_copy(x: SparseConvTensor) -> SparseConvTensor:
    """A tensor of the same sites and values, its rulebooks in a dict of its own (so that
    later convs adding theirs do not write into the kept one)."""
    y = x.replace_feature(x.features.detach())
    y.indice_dict = dict(x.indice_dict)
    return y


class StageMemo:
    """The sparse tensors after each encoder stage, with the counted work of reaching them
    (see the module docstring). Set on an encoder that supports it (``stage_memo``
    attribute, ``stage_settings(i)``) for the forwards that should share work.

    Args:
        max_entries (int): stage outputs kept at most (the least recently used go first).
            Defaults to 512.
    """

    def __init__(self, max_entries: int = 512):
        self.max_entries = int(max_entries)
        self.entries: 'OrderedDict[tuple, Tuple[SparseConvTensor, CountedWork]]' = \
            OrderedDict()
        self.resumed = 0  # stages not run again

    def begin(self, encoder: nn.Module, tensors: Sequence[Tensor], batch_size: int,
              num_stages: int) -> Optional['MemoRun']:
        """A run over one forward of ``encoder`` (None where the memo must not act)."""
        counters = FlopsCounter.active()
        if encoder.training or not counters:
            return None
        state = _digest([*tensors, *encoder.parameters(), *encoder.buffers()])
        keys, settings = [], ()
        for i in range(num_stages):
            settings = settings + (encoder.stage_settings(i), )
            keys.append((state, int(batch_size), settings))
        return MemoRun(self, keys, counters)

    def __len__(self) -> int:
        return len(self.entries)


class MemoRun:
    """One forward of an encoder under a :class:`StageMemo`.

    Args:
        memo (StageMemo): the memo.
        keys (list[tuple]): the key of each stage's output in this forward.
        counters (list[FlopsCounter]): the counters counting the forward.
    """

    def __init__(self, memo: StageMemo, keys: List[tuple], counters: List[FlopsCounter]):
        self.memo, self.keys, self.counters = memo, keys, counters
        self._snap = counters[0].snapshot()

    def resume(self) -> List[SparseConvTensor]:
        """The outputs of the stages this forward need not run (the longest prefix kept;
        empty if none), their work added to the counters."""
        if torch.is_grad_enabled():
            return []
        entries = self.memo.entries
        deepest = -1  # every stage up to it kept
        while deepest + 1 < len(self.keys) and self.keys[deepest + 1] in entries:
            deepest += 1
        if deepest < 0:
            return []
        for k in self.keys[:deepest + 1]:
            entries.move_to_end(k)
        work = entries[self.keys[deepest]][1]
        for c in self.counters:
            c.replay(work)
        self.memo.resumed += deepest + 1
        return [_detached_copy(entries[k][0]) for k in self.keys[:deepest + 1]]

    def store(self, i: int, x: SparseConvTensor) -> None:
        """Keep stage ``i``'s output and the work counted from the forward's start."""
        entries = self.memo.entries
        entries[self.keys[i]] = (_detached_copy(x), self.counters[0].since(self._snap))
        entries.move_to_end(self.keys[i])
        while len(entries) > self.memo.max_entries:
            entries.popitem(last=False)
