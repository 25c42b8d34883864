"""Pruning granularities: which weight entries DM3D removes together (issue "weight sparsity
that really runs faster").

A granularity maps every flat weight entry of a layer to a group; DM3D then ranks whole
groups (group Taylor score = the sum of its entries' scores), prunes them in that order, and
its candidate ratios stop at group boundaries only. Everything downstream is unchanged: the
incremental Fisher distortion of removing a block of entries (the quadratic form on the
removed block, accumulated group by group), the candidate costs from the joint cost model
(an offset removes all its pairs, because the cost model counts pairs per offset) and the DP.

- ``WeightGranularity`` (``'weight'``): every entry alone (unstructured; the FLOPs saving is
  counted only, dense and spconv kernels still run).
- ``OffsetGranularity`` (``'offset'``): a whole kernel offset (all in x out entries of one
  kernel position) of a sparse or dense conv; a sparse conv without those offsets runs a
  rulebook without their pairs.
- ``ChannelGranularity`` (``'channel'``): a whole output channel of a conv (sparse, dense or
  transposed) that a registered channel graph describes (``channel_graph.py``). The pruner
  ties the convs that must keep one width (a backbone stage) into one DP item and masks the
  channel's norm affine and its consumers' input slices (``channel_masks.py``), so a removed
  channel is exactly zero downstream and ``structured/slim.py`` can cut it out into a smaller
  dense model plain mmdet3d builds. The DP's cost of a channel is its share of its own
  conv's MACs; the consumers' slices it also frees make the exact cost lower, and the pruner
  raises the DP's budget by bisection until the exact cost just fits.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from ..cost.cost_model import offset_ids
from ..cost.layouts import is_sparse_conv, out_channel_axis
from ..errors import UserError
from ..registry import GRANULARITIES, build_piece
from ..weight.curves import prune_order, ratio_counts


class Granularity:
    """Groups of weight entries pruned together; see the module docstring."""

    def groups(self, module: torch.nn.Module) -> Tensor:
        """(D,) group id of every flat weight entry (ids 0..G-1)."""
        raise NotImplementedError

    def group_scores(self, module: torch.nn.Module, scores: Tensor) -> Tensor:
        """(G,) float64: every group's score, the sum of its entries' scores."""
        groups = self.groups(module)
        return torch.zeros(int(groups.max()) + 1, dtype=torch.float64).index_add_(
            0, groups, scores.double().cpu())

    def order_and_counts(self, module: torch.nn.Module, scores: Tensor, num_ratios: int,
                         group_score: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Entries in pruning order (whole groups, least important group first; ties by
        group id) and the pruned-entry counts of the K+1 candidates, each at a group
        boundary: after round(k / K * G) groups. ``group_score`` (G,), where given, ranks
        the groups instead of the entries' ``scores`` (convs that must keep the same
        channels rank them by one score)."""
        groups = self.groups(module)
        num_groups = int(groups.max()) + 1
        if group_score is None:
            group_score = self.group_scores(module, scores)
        elif len(group_score) != num_groups:
            raise ValueError(f'{num_groups} groups but {len(group_score)} group scores')
        group_order = torch.sort(group_score, stable=True).indices
        rank = torch.empty_like(group_order)
        rank[group_order] = torch.arange(num_groups)
        # entries sorted by their group's rank (stable: by index inside a group)
        order = torch.sort(rank[groups], stable=True).indices
        sizes = torch.bincount(groups, minlength=num_groups)[group_order]
        bounds = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(sizes, 0)])
        return order, bounds[self.candidate_groups(num_groups, num_ratios)]

    def candidate_groups(self, num_groups: int, num_ratios: int) -> Tensor:
        """(K+1,) groups removed by each candidate: round(k / K * G)."""
        k = torch.arange(num_ratios + 1, dtype=torch.float64)
        return torch.round(k / num_ratios * num_groups).long()


@GRANULARITIES.register_module(name='weight')
class WeightGranularity(Granularity):
    """Every weight entry is its own group (unstructured pruning)."""

    def groups(self, module):
        return torch.arange(module.weight.numel())

    def order_and_counts(self, module, scores, num_ratios, group_score=None):
        if group_score is not None:
            raise ValueError('weight granularity ranks entries, not groups')
        return prune_order(scores), ratio_counts(module.weight.numel(), num_ratios)


@GRANULARITIES.register_module(name='offset')
class OffsetGranularity(Granularity):
    """A group is one kernel offset: the in x out entries of one kernel position."""

    def groups(self, module):
        return offset_ids(module)


@GRANULARITIES.register_module(name='channel')
class ChannelGranularity(Granularity):
    """A group is one output channel (all its input x kernel entries) of a conv.

    Args:
        round_to (int): Every candidate keeps a multiple of ``round_to`` channels (the
            unpruned width excepted): GEMMs of odd widths run slower on CPU than the
            nearest multiple of 8 above them, so a slim model of odd widths can be slower
            than its FLOPs say (measured in tools/bench.py granularity_speed). Defaults to 1.
    """

    def __init__(self, round_to: int = 1):
        if int(round_to) < 1:
            raise UserError(f'round_to must be a positive channel count, got {round_to!r}')
        self.round_to = int(round_to)

    def candidate_groups(self, num_groups, num_ratios):
        taken = super().candidate_groups(num_groups, num_ratios)
        if self.round_to == 1:
            return taken
        r = self.round_to
        kept = torch.round((num_groups - taken).double() / r).long() * r
        kept = torch.where(taken == 0, num_groups, kept.clamp(max=num_groups))
        return num_groups - kept

    def groups(self, module):
        if not isinstance(module, nn.modules.conv._ConvNd) and not is_sparse_conv(module):
            raise UserError(f'channel granularity needs a dense conv, transposed conv or '
                             f'sparse conv, got {type(module).__name__}')
        w = module.weight
        axis = out_channel_axis(module)
        view = [1] * w.dim()
        view[axis] = w.shape[axis]
        return torch.arange(w.shape[axis]).reshape(view).expand(w.shape).reshape(-1)


def build_granularity(cfg) -> Granularity:
    """A granularity from its registered name or a ``dict(type=...)`` config."""
    return build_piece(cfg, GRANULARITIES, 'granularity', (Granularity, ))
