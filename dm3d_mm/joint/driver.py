"""The joint allocation inside one prune: the spatial combinations counted when asked for,
the search over them with DM3D's weight allocation at each, the re-rank, and what the report
shows of the choice. ``DM3DPruner`` builds one per ``prune`` of a model with spatial sites.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from torch import Tensor, nn

from ..cost.cost_model import CostModel
from ..errors import BudgetBelowFloor
from ..spatial.stage_memo import StageMemo
from ..weight.allocators import Allocator
from .search import CombinationCounts, JointChoice, SpatialSpec, joint_search
from .sites import SpatialSite, ratios_in_force


class JointDriver:
    """The joint part of one prune.

    Args:
        spec (SpatialSpec): the pruner's ``spatial=`` section.
        sites (Sequence[SpatialSite]): the model's sites the allocation sets.
        trained (dict[str, float]): each site's keep ratio as the model came (the
            reference of every distortion).
    """

    def __init__(self, spec: SpatialSpec, sites: Sequence[SpatialSite],
                 trained: Dict[str, float]):
        self.spec, self.sites, self.trained = spec, list(sites), dict(trained)
        self.space: Optional[CombinationCounts] = None
        self.candidates_of: Dict[str, List[float]] = {}
        self.locked: Optional[Dict[str, float]] = None  # the combination a re-rank chose
        self.probed: List[dict] = []  # what the re-rank probed

    def count_options(self, model: nn.Module, batches: Sequence[dict], calib,
                      layers: Sequence[str], outputs: Callable, lambdas, cost,
                      progress: bool, memo: Optional[StageMemo]) -> CostModel:
        """Set up the combinations (counted when the search asks for them) and return the
        cost model of the model with every site at its largest ratio (the budget's whole).

        Args:
            model (nn.Module): the detector as it came, in eval mode.
            batches (Sequence[dict]): this rank's calibration batches.
            calib: the calibration pass (its counter and reference outputs).
            layers (Sequence[str]): the pruned layers.
            outputs (Callable): the head-output extractor.
            lambdas (tuple[float, float]): box and confidence weights of the distortion.
            cost: the pruner's budget cost (``BUDGET_COSTS`` built).
            progress (bool): count the combinations on a progress bar.
            memo (StageMemo, optional): encoder stages shared with the calibration pass.
        """
        layers = list(layers)
        with ratios_in_force(self.sites):  # latency tables timed at the trained ratios
            self.candidates_of = self.spec.candidates(self.sites)
            price = cost.option_pricer(model, batches, CostModel(calib.counter, layers))
        self.space = CombinationCounts(
            model, self.sites, batches, calib.reference, outputs,
            lambda o: price(CostModel(o.counter, layers)), lambdas, progress, memo)
        # the model as trained is the calibration pass's count (and the reference of every
        # distortion)
        self.space.add(self.trained, calib.counter)
        largest = self.space.get({n: v[0] for n, v in self.candidates_of.items()})
        return self.space.cost(largest)

    def count_smallest(self) -> None:
        """Count the combination of the smallest ratios everywhere (the floor: a smaller
        keep ratio never adds pairs)."""
        self.space.get({n: v[-1] for n, v in self.candidates_of.items()})

    def reachable(self, sparsest: Dict[str, Tensor]) -> float:
        """The least cost of the sparsest masks over the combinations counted so far."""
        return min(self.space.cost(o).total(sparsest) for o in self.space.options.values())

    def charge(self, watch, spent: Dict[str, float]) -> float:
        """Book the combinations counted and priced since ``spent`` (a copy of
        ``CombinationCounts.seconds``) to the stopwatch's ``spatial_options`` and
        ``cost_model``; returns those seconds."""
        new = {k: v - spent[k] for k, v in self.space.seconds.items()}
        watch.add('spatial_options', new['count'])
        if 'cost_model' in watch.seconds:
            watch.add('cost_model', new['price'])
        return new['count'] + new['price']

    def allocate(self, cand, budget: float, allocator: Allocator, num_buckets: int,
                 watch) -> Tuple[JointChoice, CostModel, Dict[str, Tensor]]:
        """The joint choice at ``budget``: (the choice, the cost model of its combination,
        its candidates' costs). ``cand`` is the prune's ``Candidates``."""
        space, costs_of = self.space, {}

        def problem_of(option):
            m = space.cost(option)
            if m.floor >= budget:
                return None
            costs_of[id(option)] = cand.costs(m)
            return cand.problem(m, costs_of[id(option)], budget, num_buckets)

        spent = dict(space.seconds)
        joint = joint_search(space, self.spec.search, self.candidates_of, self.trained,
                             problem_of, allocator, self.spec.objective)
        # combinations the search counted (and priced) now are not the DP's time
        watch.add('dp', -self.charge(watch, spent))
        if self.locked is not None:  # the combination a re-rank chose
            row = next(r for r in joint.table if r['ratios'] == self.locked)
            if row['objective'] is None:
                raise BudgetBelowFloor(f'no weight allocation fits at {self.locked}')
            joint = JointChoice.of_row(row, space, cand.masks_of(row['choice']),
                                       joint.table, joint.converged)
        return joint, space.cost(joint.option), costs_of[id(joint.option)]

    def rerank(self, joint: JointChoice, masks_of: Callable, model: nn.Module,
               batches: Sequence[dict], reference: list, outputs: Callable,
               lambdas) -> bool:
        """Probe the best few combinations at the target that fitted (the weights as the
        model came); True where another combination than ``joint``'s wins (it is then
        ``locked`` for the next allocation)."""
        row, self.probed = self.spec.rerank.rerank(joint.table, masks_of, model, batches,
                                                   reference, outputs, lambdas)
        if row['ratios'] == joint.ratios:
            return False
        self.locked = dict(row['ratios'])
        return True

    def reference_name(self, what: str) -> str:
        """The budget's whole in words: ``what`` with its sites at their largest ratios."""
        largest = self.spec.largest(self.sites, self.trained)
        return f'{what} with every weight kept and its spatial sites at keep ratios {largest}'

    def info(self, joint: Optional[JointChoice]) -> Dict[str, object]:
        """What the report shows of the joint choice (empty without one)."""
        if joint is None:
            return {}
        spec = self.spec
        return dict(keep_ratios=dict(joint.ratios), trained_keep_ratios=dict(self.trained),
                    largest=spec.largest(self.sites, self.trained),
                    spatial_distortion=joint.spatial_distortion,
                    weight_distortion=joint.weight_distortion,
                    predicted_distortion=joint.predicted_distortion,
                    objective=joint.objective, combinations=joint.table,
                    search_converged=joint.converged,
                    **(dict(rerank=spec.rerank.spec, probed=self.probed)
                       if spec.rerank is not None else {}))
