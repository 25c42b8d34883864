"""Voxel importance and per-sample keep masks for SPSS-style spatial pruning."""
from typing import Optional

import torch
from torch import nn

from ..errors import UserError

try:
    from spconv.pytorch import SubMConv3d
except ImportError:  # pragma: no cover - spconv is a hard dependency
    SubMConv3d = None

IMPORTANCE_MODES = ('magnitude', 'learned', 'foreground')


class VoxelImportance(nn.Module):
    """Score in (0, 1) per active voxel.

    Modes: 'magnitude' (SPS-Conv: sigmoid(mean_c |x|), no parameters); 'learned' (a
    1-channel subm conv, trained only through the gate: see ``SPSSSubMConv3d(gate=True)``);
    'foreground' (a linear score of the voxel's own features, trained by a supervised
    foreground loss, :class:`SPSSVoxelNet`: probability that the voxel lies in a GT box). In
    training the 'foreground' scorer keeps its last logits and voxel indices
    (``last_logits``, ``last_indices``, ``last_spatial_shape``) for that loss.

    Args:
        in_channels (int): channels of the features scored.
        mode (str): 'magnitude', 'learned' or 'foreground'. Defaults to 'magnitude'.
        kernel_size (int): kernel of the learned subm conv. Defaults to 3.
        channels (int, optional): what the 'magnitude' score divides the sum of ``|x|`` by:
            the channel count the model was trained with, where channel pruning has since
            cut zero channels out (``structured/slim.py``), so the score, and with a gate
            the features, stay what they were. None: ``in_channels`` (the mean).
    """

    dm3d_skip_pruning = True  # weight pruning leaves the predictor alone

    def __init__(self, in_channels: int, mode: str = 'magnitude', kernel_size: int = 3,
                 channels: Optional[int] = None):
        super().__init__()
        if mode not in IMPORTANCE_MODES:
            raise UserError(f'importance must be one of {IMPORTANCE_MODES}, got {mode!r}')
        self.mode = mode
        self.channels = in_channels if channels is None else int(channels)
        if mode == 'learned':
            self.conv = SubMConv3d(in_channels, 1, kernel_size, padding=kernel_size // 2,
                                   bias=True)
        elif mode == 'foreground':
            self.linear = nn.Linear(in_channels, 1)
        self.last_logits = self.last_indices = self.last_spatial_shape = None

    def forward(self, x) -> torch.Tensor:
        if self.mode == 'magnitude':
            feats = x.features.abs()
            mean = feats.mean(1) if feats.shape[1] == self.channels else \
                feats.sum(1) / self.channels
            return torch.sigmoid(mean)
        if self.mode == 'learned':
            return torch.sigmoid(self.conv(x).features[:, 0])
        logits = self.linear(x.features)[:, 0]
        if self.training:
            self.last_logits, self.last_indices = logits, x.indices
            self.last_spatial_shape = list(x.spatial_shape)
        return torch.sigmoid(logits)


def kept_count(n: int, prune_ratio: float, batch_size: Optional[int]) -> Optional[int]:
    """How many of ``n`` voxels :func:`keep_mask` keeps, where the host knows it (one sample:
    ``n - floor(n * prune_ratio)``); None for several samples (each sample's count decides).

    Args:
        n (int): the voxels ranked.
        prune_ratio (float): fraction of each sample's voxels pruned.
        batch_size (int, optional): samples in the batch.
    """
    if n == 0 or prune_ratio <= 0:
        return n
    return n - int(n * prune_ratio) if batch_size == 1 else None


def keep_mask(scores: torch.Tensor, batch_idx: torch.Tensor, prune_ratio: float,
              batch_size: Optional[int] = None,
              ranked: Optional[torch.Tensor] = None) -> torch.Tensor:
    """True for the voxels kept: in each sample the floor(n * prune_ratio) lowest scores go
    (ties broken by position, so the mask is deterministic).

    Sync-free where the batch size is known: for one sample, the pruned count's score by
    selection (``kthvalue``, linear time) and its ties by a cumulative count; for several, one
    stable sort by score (ties keep their position order), one stable sort by sample, each
    voxel's rank in its sample against its sample's pruned count; all on the device, no count
    or threshold read back.

    Args:
        scores (Tensor): (n, ) importance per voxel.
        batch_idx (Tensor): (n, ) sample of each voxel.
        prune_ratio (float): fraction of each sample's voxels pruned.
        batch_size (int, optional): samples in the batch. None: read from ``batch_idx``
            (one host sync). Defaults to None.
        ranked (Tensor, optional): (n, ) bool, the voxels that are ranked; the others are
            kept and not counted in their sample's n (a count the host does not know, so
            the sort path runs for one sample too). None: all. Defaults to None.
    """
    n = scores.shape[0]
    keep = torch.ones(n, dtype=torch.bool, device=scores.device)
    if n == 0 or prune_ratio <= 0:
        return keep
    scores = scores.detach()
    if batch_size is None:
        batch_size = int(batch_idx.max()) + 1
    if batch_size == 1 and ranked is None:  # one sample: its pruned count is the shape's
        n_pruned = n - kept_count(n, prune_ratio, 1)
        if n_pruned == 0:
            return keep
        # the n_pruned-th smallest score in O(n) (no sort); the ties at it go lowest
        # position first, counted on the device
        thr = torch.kthvalue(scores, n_pruned).values
        below = scores < thr
        tie = scores == thr
        return ~(below | (tie & (torch.cumsum(tie.long(), 0) <= n_pruned - below.sum())))
    if ranked is not None:  # the others rank last in their sample
        scores = scores.masked_fill(~ranked, float('inf'))
    order = torch.sort(scores, stable=True).indices
    batch_idx = batch_idx.long()
    order = order[torch.sort(batch_idx[order], stable=True).indices]
    sample = batch_idx[order]
    counts = torch.zeros(batch_size, dtype=torch.long, device=scores.device).index_add_(
        0, batch_idx, torch.ones_like(batch_idx))
    rank = torch.arange(n, device=scores.device) - (torch.cumsum(counts, 0) - counts)[sample]
    if ranked is not None:
        counts = torch.zeros_like(counts).index_add_(0, batch_idx, ranked.long())
    # int(count * prune_ratio) of each sample, in the same double arithmetic
    pruned = (counts.double() * prune_ratio).floor().long()
    keep[order] = rank >= pruned[sample]
    return keep
