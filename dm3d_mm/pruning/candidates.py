"""The weight candidates of one prune: per pruned layer its prune order, candidate counts,
distortion curve and the candidates its constraints allow, grouped into the DP's items (a
layer alone, or the channel-granular convs that must keep one width), and the masks of a
choice.
"""
import fnmatch
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

import torch
from torch import Tensor, nn

from ..cost.cost_model import CostModel, kept_per_offset
from ..cost.layouts import mask_at
from ..errors import UserError
from ..structured.channel_graph import WidthGroup, find_channel_graph, producer_index
from ..structured.channel_masks import channel_side_masks
from ..structured.granularity import ChannelGranularity, Granularity, WeightGranularity
from ..weight.allocators import WeightProblem
from ..weight.curves import taylor_scores
from ..weight.estimators import CurveInputs, DistortionEstimator


@dataclass
class Candidates:
    """Per layer: prune order, candidate counts, distortion curve, allowed candidates; the DP
    items and the masks of a choice (one candidate index per item).

    Args:
        layers (dict[str, nn.Module]): the pruned layers.
        orders (dict[str, Tensor]): each layer's prune order.
        counts (dict[str, Tensor]): each layer's candidate counts of pruned weights.
        dist (dict[str, Tensor]): each layer's distortion per candidate.
        allowed (dict[str, Tensor]): which candidates the density constraints allow.
        items (list[list[str]]): the DP's items, in layer order.
        masks_of (Callable): a choice (one index per item) -> the masks it prunes to.
        exact_differs (bool): whether a choice's exact cost can differ from the sum of its
            items' (channel ties free norms and consumers' input slices).
        kept (dict[str, Tensor]): weights kept per kernel offset of each candidate.
    """
    layers: Dict[str, nn.Module]
    orders: Dict[str, Tensor]
    counts: Dict[str, Tensor]
    dist: Dict[str, Tensor]
    allowed: Dict[str, Tensor]
    items: List[List[str]]
    masks_of: Callable[[List[int]], Dict[str, Tensor]]
    exact_differs: bool
    kept: Dict[str, Tensor]

    def costs(self, cm: CostModel) -> Dict[str, Tensor]:
        """Each layer's cost per candidate under the cost model ``cm``."""
        return {n: cm.curve_costs(n, self.orders[n], self.counts[n], self.kept[n])
                for n in self.layers}

    def problem(self, cm: CostModel, costs: Dict[str, Tensor], budget: float,
                num_buckets: int) -> WeightProblem:
        """The DP's problem under the cost model ``cm`` (candidate costs ``costs``).

        Args:
            cm (CostModel): the cost model (its total and floor).
            costs (dict[str, Tensor]): :meth:`costs` under ``cm``.
            budget (float): the budget, in ``cm``'s unit.
            num_buckets (int): the DP's budget resolution.
        """
        items = self.items
        return WeightProblem(
            self.layers, cm.total, cm.floor, budget, items,
            [sum(costs[n] for n in it).tolist() for it in items],
            [sum(self.dist[n] for n in it).tolist() for it in items],
            [torch.stack([self.allowed[n] for n in it]).all(0).tolist() for it in items],
            self.masks_of, exact_differs=self.exact_differs, num_buckets=num_buckets)

    def curves_of(self, choice: Sequence[int], costs: Dict[str, Tensor]) -> Dict[str, dict]:
        """Per layer of a choice, what the report shows of its curve: the candidates'
        ratios, distortions and costs, the chosen index and its distortion."""
        curves = {}
        for it, k in zip(self.items, choice):
            for n in it:
                curves[n] = dict(
                    ratios=(self.counts[n].double() / self.layers[n].weight.numel()).tolist(),
                    distortion=self.dist[n].tolist(), macs=costs[n].tolist(), chosen=int(k),
                    chosen_distortion=float(self.dist[n][k]))
        return curves


class CandidateBuilder:
    """Builds a prune's :class:`Candidates` from the pruner's granularity rules, candidate
    count, density bounds and distortion estimator.

    Args:
        granularity (dict[str, Granularity]): fnmatch pattern of layer names -> granularity
            (first match wins; layers matching none are unstructured).
        num_ratios (int): candidate pruning ratios per layer.
        min_density (float): lowest weight density a layer may get.
        max_density (float): highest weight density a pruned layer may keep.
        estimator (DistortionEstimator): the distortion curves.
    """

    def __init__(self, granularity: Dict[str, Granularity], num_ratios: int,
                 min_density: float, max_density: float, estimator: DistortionEstimator):
        self.granularity = granularity
        self.num_ratios = num_ratios
        self.min_density, self.max_density = min_density, max_density
        self.estimator = estimator

    def granularity_of(self, name: str) -> Granularity:
        """The granularity of a layer: the first pattern of ``granularity`` it matches."""
        for pat, gran in self.granularity.items():
            if fnmatch.fnmatchcase(name, pat):
                return gran
        return WeightGranularity()

    def channel_layers(self, names) -> List[str]:
        """The layers of ``names`` pruned in whole channels."""
        return [n for n in names if isinstance(self.granularity_of(n), ChannelGranularity)]

    def build(self, model: nn.Module, layers: Dict[str, nn.Module], grads: Dict[str, Tensor],
              keep_dense: Sequence[str], curve_inputs: Callable[..., CurveInputs]
              ) -> Candidates:
        """The estimator's curves, each layer's candidates and which of them the
        constraints allow, and the DP items.

        Args:
            model (nn.Module): the detector.
            layers (dict[str, nn.Module]): the pruned layers.
            grads (dict[str, Tensor]): the calibration pass's gradient rows per layer.
            keep_dense (Sequence[str]): layers that stay dense.
            curve_inputs (Callable): ``(orders, counts) -> CurveInputs`` of the estimator.
        """
        channel = self.channel_layers(list(layers))
        groups = find_channel_graph(model).groups(model) if channel else []
        scores = {n: taylor_scores(m.weight, grads[n]) for n, m in layers.items()}
        shared = self._same_channel_scores(layers, scores, groups)
        orders, counts = {}, {}
        for n, m in layers.items():
            orders[n], counts[n] = self.granularity_of(n).order_and_counts(
                m, scores[n], self.num_ratios, group_score=shared.get(n))
        dist = self.estimator.curves(curve_inputs(orders, counts))
        allowed = {}
        for n in layers:
            density = 1.0 - counts[n].double() / layers[n].weight.numel()
            ok = (density >= self.min_density - 1e-12) & (density <= self.max_density + 1e-12)
            if n in keep_dense:
                ok = counts[n] == 0
            if not ok.any():
                ok = counts[n] == counts[n][torch.argmin((density - self.min_density).abs())]
            allowed[n] = ok
        # a DP item is one layer, or the convs that must keep one width (channel ties): its
        # candidate k prunes every member at k, costs and distortions add up
        items = self._items(list(layers), groups)

        def masks_of(choice):
            masks = {n: mask_at(layers[n].weight, orders[n], int(counts[n][k]))
                     for it, k in zip(items, choice) for n in it}
            masks.update(channel_side_masks(model, groups, masks, channel))
            return masks

        # weights kept per kernel offset of every candidate: one table for every cost model
        # (each spatial combination's, each re-allocation's)
        kept = {n: kept_per_offset(m, orders[n], counts[n]) for n, m in layers.items()}
        return Candidates(layers, orders, counts, dist, allowed, items, masks_of,
                          bool(groups), kept)

    def sparsest(self, model: nn.Module, layers: Dict[str, nn.Module],
                 keep_dense: Sequence[str]) -> Dict[str, Tensor]:
        """Masks of the lowest cost any allocation reaches: every pruned layer at its lowest
        allowed density (channel layers in whole channels, their norms and consumers' input
        slices freed with them, as the allocation's own masks are).

        Args:
            model (nn.Module): the detector.
            layers (dict[str, nn.Module]): the pruned layers.
            keep_dense (Sequence[str]): layers that stay dense.
        """
        masks = {}
        channel = [n for n in self.channel_layers(layers) if n not in keep_dense]
        for n, m in layers.items():
            if n in keep_dense:
                continue
            numel = m.weight.numel()
            # the DP's own candidates (group boundaries, round_to), the sparsest allowed;
            # which groups go does not change the cost, so any order will do
            order, counts = self.granularity_of(n).order_and_counts(
                m, torch.zeros(numel), self.num_ratios)
            density = 1.0 - counts.double() / numel
            ok = density >= self.min_density - 1e-12
            if not ok.any():
                ok = counts == counts[torch.argmin((density - self.min_density).abs())]
            masks[n] = mask_at(m.weight, order, int(counts[ok].max()))
        if channel:
            masks.update(channel_side_masks(model, find_channel_graph(model).groups(model),
                                            masks, channel))
        return masks

    def _items(self, names: List[str], groups: List[WidthGroup]) -> List[List[str]]:
        """The DP's items in layer order: channel-granular convs of one width group
        together (all of them must be selected and channel-granular), every other layer
        alone."""
        channel = self.channel_layers(names)
        group_of = producer_index(groups)
        items, seen = [], set()
        for n in names:
            if n not in channel:
                items.append([n])
                continue
            group = group_of.get(n)
            if group is None:
                raise UserError(f'{n} has channel granularity but no channel graph of the '
                                 'model can remove its output channels')
            members = [pr.layer for pr in group.producers]
            missing = [m for m in members if m not in channel]
            if missing:
                raise UserError(f'channel granularity ties {n} to {missing} (one width, '
                                 f'{group.key}): select them with channel granularity too')
            if group.key not in seen:
                seen.add(group.key)
                items.append(members)
        return items

    def _same_channel_scores(self, layers: Dict[str, nn.Module], scores: Dict[str, Tensor],
                             groups: List[WidthGroup]) -> Dict[str, Tensor]:
        """Channel score of each member of a ``same_channels`` group: its channel's Taylor
        score summed over the group's convs, so that every member removes the same
        channels (members missing from the selection are ``_items``' error)."""
        out = {}
        for group in groups:
            members = [pr.layer for pr in group.producers]
            if not group.same_channels or any(
                    m not in layers or not isinstance(self.granularity_of(m),
                                                      ChannelGranularity) for m in members):
                continue
            total = sum(self.granularity_of(m).group_scores(layers[m], scores[m])
                        for m in members)
            out.update({m: total for m in members})
        return out
