"""SparseBEVSECOND: mmdet3d's SECOND backbone whose blocks pass the active BEV pixels'
feature rows from layer to layer.

Run one by one, every SparseBEVConv2d gathers its active pixels from a dense (N, C, H, W)
map and scatters its outputs back into a fresh one, and the SPBN and ReLU after it sweep the
whole map: on the demo's Ada3D SECOND that bookkeeping costs more than the GEMMs. Here a block
gathers once, runs its sparse convs, SPBN and ReLU on the rows, and scatters once at its end
(or before a layer that needs the map: a conv taking its dense path, any other module).
Pixels whose features become all zero drop out of the active set before the next conv, as
the one-by-one path's ``(x != 0).any(1)`` drops them, so the values are the same (in eval
that check is one read of device-side flags per block, and the block runs again checked in
the rare case a pixel died: :func:`run_block_on_rows`). While any
module of a block has forward hooks other than a FLOPs counter's (pruning masks, calibration)
the block runs one by one, so that every hook sees its layer's call; a FLOPs counter is told
of every call the rows path makes (pairs, active pixels in and out, norm and activation work
over the rows), so the model is counted as it runs. The pairs multiplied are the same either
way.
Same arguments and state_dict keys as SECOND.
"""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet3d.models.backbones import SECOND
from mmdet3d.registry import MODELS
from torch import nn

from ..cost.counter import FlopsCounter, count_call, count_elementwise, only_counting_hooks
from ..errors import UnfitModel
from .active_pixels import (
    live_mask,
    live_rows,
    nonzero_pixels,
    note_live_rows,
    remember_count,
)
from .sparse_bev_conv import SparseBEVConv2d, bev_rows, rows_to_bev
from .spbn import SparsityPreservingBN2d


def _live(rows: torch.Tensor, mask: torch.Tensor):
    """Drop the rows that are all zero (and their pixels from ``mask``)."""
    live = (rows != 0).any(1)
    if bool(live.all()):
        return rows, mask
    mask = live_mask(mask, live)
    rows = rows[live]
    remember_count(mask, len(rows))
    return rows, mask


class _LiveMask:
    """Stands in for :func:`_live` on the optimistic path: keeps every row and tracks, on
    the device, which are still live (non-zero at every check so far); the dead ones are
    zeroed before each conv, so the live rows get exactly the sums the checked pass gives
    them (a dead row adds only zeros), and at the block's end, where ``alive`` goes on with
    the map (:func:`~.active_pixels.note_live_rows`)."""

    def __init__(self):
        self.alive = None

    def __call__(self, rows: torch.Tensor, mask: torch.Tensor):
        live = (rows != 0).any(1)
        self.alive = live if self.alive is None else self.alive & live
        return torch.where(self.alive[:, None], rows, 0), mask


def _rows_pass(block: nn.Sequential, x: torch.Tensor, live, to_map: bool = True):
    """One pass of ``block`` on rows; ``live`` checks the rows before each conv after the
    first. Returns (output map (None for output rows where not ``to_map``), output rows or
    None, their mask)."""
    rows = mask = alive = None
    for layer in block:
        if isinstance(layer, SparseBEVConv2d):
            if rows is None:
                # the rows of the block before with their live flags, on the optimistic path
                known = live_rows(x) if isinstance(live, _LiveMask) else None
                mask, alive = known if known is not None else (nonzero_pixels(x), None)
                if layer.runs_sparse(mask):  # gather only for a sparse call
                    rows, shape = bev_rows(x, mask), tuple(x.shape)
            else:
                rows, mask = live(rows, mask)
            if rows is not None and layer.runs_sparse(mask):
                sites_in = len(rows)
                if alive is not None and layer.keeps_pixels(shape[2:]):
                    live.alive = alive  # the same rows on: the dead stay dead
                rows, mask = layer.forward_rows(rows, mask, shape, compare_masks=False,
                                                alive=alive)
                alive = None
                count_call(layer, layer._last_pairs, sites_in, len(rows), rows.numel())
                ho, wo = mask.shape[1:]
                shape = (shape[0], layer.out_channels, ho, wo)
                continue
        elif rows is not None and isinstance(layer, SparsityPreservingBN2d):
            rows = layer.forward_rows(rows)
            count_elementwise(layer, rows.numel())
            continue
        elif rows is not None and isinstance(layer, nn.ReLU):
            rows = F.relu(rows)
            count_elementwise(layer, rows.numel())
            continue
        if rows is not None:
            x, rows = rows_to_bev(rows, mask), None
        x = layer(x)
    if rows is None:
        return x, None, None
    return (rows_to_bev(rows, mask) if to_map else None), rows, mask


def _same_rows_after_first(block: nn.Sequential) -> bool:
    """Whether every layer of ``block`` runs on rows and every conv after its first keeps
    the active pixels (stride 1, submanifold): the rows of one pixel set throughout."""
    convs = [m for m in block if isinstance(m, SparseBEVConv2d)]
    return bool(convs) and block[0] is convs[0] and all(
        isinstance(m, (SparseBEVConv2d, SparsityPreservingBN2d, nn.ReLU)) for m in block) \
        and all(c.submanifold and c.stride == (1, 1) for c in convs[1:])


def run_block_on_rows(block: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``block(x)`` with its sparse convs, SPBNs and ReLUs on feature rows (see module doc).

    In eval mode without a FLOPs counter, a block whose convs after the first keep the
    active pixels runs once and waits for nothing of its own: the rows that die (all zero
    before a conv, where the checked pass drops them) are tracked on the device and zeroed
    (a dead row adds only zeros to its neighbours' sums), and the output map carries its
    rows' mask with their live flags (:func:`~.active_pixels.note_live_rows`) for the next
    block's first conv (pairs of the live rows only) and the neck's upsampling (a zero row
    gives what an inactive pixel gives). A counted or training call, or another block, runs
    the checked pass (the counter sees the pairs multiplied; SPBN statistics update once).

    Args:
        block (nn.Sequential): a SECOND block (convs, norms, ReLUs).
        x (Tensor): its input map (N, C, H, W).

    Returns:
        Tensor: the block's output map.
    """
    if block.training or FlopsCounter.active() or not _same_rows_after_first(block):
        return _rows_pass(block, x, _live)[0]
    track = _LiveMask()
    out, rows, mask = _rows_pass(block, x, track, to_map=False)
    if rows is None:  # the block ran dense
        return out
    rows, _ = track(rows, mask)  # the rows that died are zero
    return note_live_rows(rows_to_bev(rows, mask), mask, track.alive)


@MODELS.register_module()
class SparseBEVSECOND(SECOND):
    """SECOND whose blocks run on the active pixels' rows (see the module docstring).

    Args:
        *args: SECOND's arguments (conv_cfg SparseBEVConv2d and norm_cfg SPBN2d make the
            row path apply; other layers run as in SECOND).
        grow_per_block (bool): each block's first conv a regular sparse conv
            (``SparseBEVConv2d(submanifold=False)``): the active set grows by one kernel
            reach per block, so that features reach empty pixels next to the points (an
            object's centre, say). Defaults to False (submanifold throughout: the active set
            never grows).
        dense_blocks (Sequence[int]): indices of blocks built as mmdet3d's SECOND builds
            them (``dense_conv_cfg`` / ``dense_norm_cfg``): they compute every pixel, so the
            pixels dropped before them get features again (the last block, say, whose
            upsampled output then reaches the head at every pixel). Their state_dict keys
            are SECOND's, so a dense checkpoint loads into them as it is. Defaults to ().
        dense_conv_cfg (dict): conv config of the dense blocks. Defaults to
            ``dict(type='Conv2d', bias=False)``.
        dense_norm_cfg (dict): norm config of the dense blocks. Defaults to
            ``dict(type='BN', eps=1e-3, momentum=0.01)``, SECOND's.
        **kwargs: SECOND's keyword arguments.
    """

    def __init__(self, *args, grow_per_block: bool = False,
                 dense_blocks: Sequence[int] = (),
                 dense_conv_cfg: dict = dict(type='Conv2d', bias=False),
                 dense_norm_cfg: dict = dict(type='BN', eps=1e-3, momentum=0.01), **kwargs):
        super().__init__(*args, **kwargs)
        self.dense_blocks = tuple(int(i) for i in dense_blocks)
        bad = [i for i in self.dense_blocks if not 0 <= i < len(self.blocks)]
        if bad:
            raise UnfitModel(f'dense_blocks {bad} out of range: the backbone has '
                             f'{len(self.blocks)} blocks')
        if self.dense_blocks:
            dense = SECOND(*args, **dict(kwargs, conv_cfg=dense_conv_cfg,
                                         norm_cfg=dense_norm_cfg))
            for i in self.dense_blocks:
                self.blocks[i] = dense.blocks[i]
        if grow_per_block:  # the state is each first conv's own ``submanifold`` flag
            for i, block in enumerate(self.blocks):
                if i in self.dense_blocks:
                    continue
                if not isinstance(block[0], SparseBEVConv2d):
                    raise UnfitModel('grow_per_block needs conv_cfg type SparseBEVConv2d, got '
                                    f'{type(block[0]).__name__}')
                block[0].submanifold = False

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs = []
        for block in self.blocks:
            x = run_block_on_rows(block, x) if only_counting_hooks(block) else block(x)
            outs.append(x)
        return tuple(outs)
