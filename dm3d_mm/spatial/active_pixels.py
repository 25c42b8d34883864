"""Active-pixel counts and indices of BEV masks, each read from the device once per mask.

A sparse BEV layer needs, per (N, H, W) mask of active pixels, how many there are (its
density decision, the size of its feature rows) and where they are (gather and scatter of the
rows). Both come from one read of the count: the indices are then a ``nonzero_static`` of a
size known on the host, which does not wait for the device. A builder that knows a mask's
count already (a rulebook's outputs, a row tensor's length) tells it here, and the mask costs
no wait at all. Masks are remembered by identity while they live, so a mask must not be
changed in place once asked about; what is remembered of a mask goes when the mask does.

A BEV map built from feature rows can carry the mask of its non-zero pixels
(:func:`note_nonzero`), so the next sparse layer takes that mask (and its known count) instead
of computing ``(x != 0).any(1)`` and reading its count again (:func:`nonzero_pixels`). Or it
carries the mask of the rows it was built from (count known) with, on the device, which of
them are non-zero (:func:`note_live_rows`): a layer that gives a zero row what it gives an
inactive pixel runs on those rows (:func:`row_pixels`), one that must skip the zero rows
takes the flags along (:func:`live_rows`), and neither waits for the live count.
"""
import weakref
from typing import Dict, Optional, Tuple

import torch

# id -> (weakref to the mask, active count, flat active indices or None)
_KNOWN: Dict[int, Tuple[weakref.ref, int, Optional[torch.Tensor]]] = {}
_MAX_KNOWN = 64


def _entry(mask: torch.Tensor):
    entry = _KNOWN.get(id(mask))
    return entry if entry is not None and entry[0]() is mask else None


def remember_count(mask: torch.Tensor, count: int) -> None:
    """Record that ``mask`` holds ``count`` active pixels (known on the host).

    Args:
        mask (Tensor): (N, H, W) bool mask of active pixels.
        count (int): its number of True entries.
    """
    entry = _entry(mask)
    if entry is not None and entry[1] == count:
        return
    if len(_KNOWN) >= _MAX_KNOWN:
        _KNOWN.clear()
    key = id(mask)
    # the entry (and its index tensor) goes with the mask
    _KNOWN[key] = (weakref.ref(mask, lambda _, key=key: _KNOWN.pop(key, None)), int(count), None)


def known_count(mask: torch.Tensor) -> Optional[int]:
    """Active pixels of ``mask`` where they are known on the host already, else None (no
    read).

    Args:
        mask (Tensor): (N, H, W) bool mask of active pixels.
    """
    entry = _entry(mask)
    return None if entry is None else entry[1]


def active_count(mask: torch.Tensor) -> int:
    """Active pixels of ``mask``: known, or read back once (one host sync).

    Args:
        mask (Tensor): (N, H, W) bool mask of active pixels.
    """
    entry = _entry(mask)
    if entry is None:
        remember_count(mask, int(mask.sum()))
        entry = _entry(mask)
    return entry[1]


def active_index(mask: torch.Tensor) -> torch.Tensor:
    """Flat row-major indices of the active pixels of ``mask`` (the order of ``x[mask]``),
    selected with the known count (``nonzero_static``: no wait).

    Args:
        mask (Tensor): (N, H, W) bool mask of active pixels.
    """
    count = active_count(mask)
    ref, _, index = _KNOWN[id(mask)]
    if index is None:
        index = torch.nonzero_static(mask.reshape(-1), size=count).flatten()
        _KNOWN[id(mask)] = (ref, count, index)
    return index


def active_pixels(mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(batch, row, col) of the active pixels of ``mask``, row-major, as
    ``torch.nonzero(mask, as_tuple=True)`` gives them.

    Args:
        mask (Tensor): (N, H, W) bool mask of active pixels.
    """
    index = active_index(mask)
    h, w = mask.shape[1:]
    return index // (h * w), index // w % h, index % w


def note_nonzero(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Record on the map ``x`` (N, C, H, W) that ``mask`` (N, H, W) is exactly
    ``(x != 0).any(1)``; the record is an attribute of that tensor object, void once ``x``
    is changed in place.

    Args:
        x (Tensor): the BEV map.
        mask (Tensor): its non-zero pixels.

    Returns:
        Tensor: ``x``.
    """
    x.bev_nonzero = (mask, x._version)
    return x


def nonzero_pixels(x: torch.Tensor) -> torch.Tensor:
    """``(x != 0).any(1)`` of a BEV map (N, C, H, W): the recorded mask where
    :func:`note_nonzero` left one that still holds, else computed.

    Args:
        x (Tensor): the BEV map.
    """
    known = getattr(x, 'bev_nonzero', None)
    if known is not None and known[1] == x._version and \
            tuple(known[0].shape) == (x.shape[0], *x.shape[2:]):
        return known[0]
    return (x != 0).any(1)


def note_live_rows(x: torch.Tensor, mask: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """Record on the map ``x`` (N, C, H, W) that it is zero outside ``mask`` (N, H, W; its
    count known) and that, of ``mask``'s pixels in row-major order, exactly those flagged in
    ``alive`` are non-zero; the record is an attribute of that tensor object, void once
    ``x`` is changed in place.

    Args:
        x (Tensor): the BEV map.
        mask (Tensor): the pixels it was built from.
        alive (Tensor): (pixels of ``mask``, ) bool, the non-zero ones.

    Returns:
        Tensor: ``x``.
    """
    x.bev_live_rows = (mask, alive, x._version)
    return x


def live_rows(x: torch.Tensor) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """(mask, alive) that :func:`note_live_rows` recorded on ``x`` where it still holds,
    else None.

    Args:
        x (Tensor): the BEV map.
    """
    known = getattr(x, 'bev_live_rows', None)
    if known is not None and known[2] == x._version and \
            tuple(known[0].shape) == (x.shape[0], *x.shape[2:]):
        return known[0], known[1]
    return None


def row_pixels(x: torch.Tensor) -> torch.Tensor:
    """Pixels outside which the map ``x`` is zero, for a layer that gives a zero row what
    it gives an inactive pixel: the rows' mask :func:`note_live_rows` recorded (its count
    known; some of its rows may be zero), else :func:`nonzero_pixels`.

    Args:
        x (Tensor): the BEV map.
    """
    known = live_rows(x)
    return nonzero_pixels(x) if known is None else known[0]


def live_mask(mask: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """The pixels of ``mask`` flagged in ``alive`` (row-major), as a new mask (no wait;
    its count is not known).

    Args:
        mask (Tensor): (N, H, W) bool mask with a known count.
        alive (Tensor): (pixels of ``mask``, ) bool.
    """
    out = torch.zeros_like(mask)
    out.view(-1).index_copy_(0, active_index(mask), alive)
    return out
