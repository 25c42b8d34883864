"""The joint allocation: spatial keep ratios and layer weight densities chosen together.

Objective, over a grid of keep ratios per spatial site and the weight candidates of every
pruned layer (DM3D's curves):

    minimise  D_s(r) + sum_i delta_{i, k_i}
    s.t.      C(r, k) = floor(r) + sum_i cost_i(r, k_i) <= budget

``D_s(r)`` is the output distortion of the model with the keep ratios ``r`` and dense
weights, measured on the calibration frames against the model as it was trained (its own
keep ratios, dense weights) with the same head-output distortion as the weight curves;
``delta_{i,k}`` are the weight curves of the model as trained. The cost is exact for each
``r``: the calibration frames are run with ``r`` in force and the pairs of every layer
counted, so a ratio changes the cost of every layer downstream of it, and a weight density
multiplies those pairs. Each combination the search asks for is counted once
(:class:`CombinationCounts`; its forwards resume from the encoder stages an earlier combination
or the calibration pass ran with the same settings, ``spatial/stage_memo.py``); for each,
DM3D's DP gives the optimal weight choice within the budget, and the combination of least
objective wins (the sum above by default; ``joint/objective.py``: other ``JOINT_OBJECTIVES``
weigh the two terms otherwise, monotone in the weight term, so the DP's choice at a
combination is the same). With the ``grid`` search
(``joint/spatial_search.py``) every combination is counted: the optimum of the objective over
the grid (the DP's own budget rounding aside).
"""
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from ..cost import FlopsCounter
from ..errors import BudgetBelowFloor, UserError
from ..progress import progress_bar
from ..spatial.stage_memo import StageMemo
from ..weight.allocators import Allocator, WeightProblem
from ..weight.calibration import counted_distortion
from .objective import SumObjective, build_objective
from .rerank import build_rerank
from .sites import SpatialSite, find_sites, ratios_in_force
from .spatial_search import build_spatial_search

DEFAULT_GRID = (1.0, 0.75, 0.5, 0.25)


class SpatialSpec:
    """The ``spatial=`` section of a pruning config: which sites the allocation chooses the
    keep ratio of, from which values (each site's ratio in force is always one of them), and
    how the combinations are searched. Every combination the search scores is run once on the
    calibration frames: the ``grid`` search costs ``prod(len(values))`` forwards.

    Args:
        grid (Sequence[float] | dict): keep ratios tried at every site, or site name ->
            its own keep ratios. Defaults to (1.0, 0.75, 0.5, 0.25).
        sites (Sequence[str], optional): the sites to choose (``<module>.<location>``, e.g.
            ``middle_encoder.bev``), among every site the finders could set (an Ada3D
            location the model does not drop at, such as ``middle_encoder.input``, included);
            None: the sites the model drops at. Defaults to None.
        finders (Sequence[str | dict]): ``SITE_FINDERS`` finders. Defaults to
            ('ada3d', 'spss').
        search (str | dict): a ``SPATIAL_SEARCHES`` search: 'grid' (every combination) or
            'coordinate' (coordinate descent over the sites). Defaults to 'grid'.
        objective (str | dict): a ``JOINT_OBJECTIVES`` objective the combinations are
            compared by: 'sum' (spatial + weight distortion) or
            ``dict(type='saturating_weight', scale=c)``. Defaults to 'sum'.
        rerank (str | dict, optional): a ``JOINT_RERANKS`` re-rank of the combinations of
            least objective before one is chosen, e.g. ``dict(type='finetune_probe',
            top_k=3, steps=30)``. Defaults to None (the least objective is chosen).
    """

    def __init__(self, grid: Union[Sequence[float], Dict[str, Sequence[float]]] = DEFAULT_GRID,
                 sites: Optional[Sequence[str]] = None,
                 finders: Sequence = ('ada3d', 'spss'), search: Union[str, dict] = 'grid',
                 objective: Union[str, dict] = 'sum',
                 rerank: Optional[Union[str, dict]] = None):
        self.search = build_spatial_search(search)
        self.objective = build_objective(objective)
        self.rerank = build_rerank(rerank)
        self.grid = {k: self._values(k, v) for k, v in grid.items()} \
            if isinstance(grid, dict) else self._values('grid', grid)
        self.sites = None if sites is None else list(sites)
        self.finders = list(finders)

    @staticmethod
    def _values(name, values) -> List[float]:
        values = sorted({float(v) for v in values}, reverse=True)
        if not values or not all(0 < v <= 1 for v in values):
            raise UserError(f'spatial grid {name}: keep ratios must be in (0, 1], got {values}')
        return values

    def sites_of(self, model: nn.Module) -> List[SpatialSite]:
        """The model's sites this grid chooses (ValueError if it has none)."""
        sites = find_sites(model, self.finders, self.sites)
        if not sites:
            raise UserError('pruning.spatial is set but the model has no spatial pruning site '
                             f'({", ".join(map(str, self.finders))}): use an Ada3D or SPSS '
                             'detector, or drop spatial=')
        if isinstance(self.grid, dict):
            missing = [s.name for s in sites if s.name not in self.grid]
            unknown = sorted(set(self.grid) - {s.name for s in sites})
            if missing or unknown:
                raise UserError(f'spatial grid: sites without values {missing}, values for '
                                 f'unknown sites {unknown}')
        return sites

    def values(self, site: SpatialSite) -> List[float]:
        """The site's candidates, largest first: its grid and the ratio in force."""
        grid = self.grid[site.name] if isinstance(self.grid, dict) else self.grid
        return sorted(set(grid) | {site.get()}, reverse=True)

    def largest(self, sites: Sequence[SpatialSite],
                ratios: Optional[Dict[str, float]] = None) -> Dict[str, float]:
        """Every site at its largest candidate (the state the budget is a fraction of);
        ``ratios``: the ratios in force to take the candidates of (default: the sites')."""
        with ratios_in_force(sites, ratios):  # a site's candidates include its ratio
            return {s.name: self.values(s)[0] for s in sites}

    def candidates(self, sites: Sequence[SpatialSite]) -> Dict[str, List[float]]:
        """Site name -> its candidates (largest first), the ratios in force among them."""
        return {s.name: self.values(s) for s in sites}


@dataclass
class KeepCombination:
    """One combination of keep ratios, counted and measured with dense weights.

    Args:
        ratios (dict[str, float]): site -> keep ratio.
        counter (FlopsCounter): the joint FLOPs counted over the calibration frames.
        distortion (float): the measured output distortion against the reference.
    """
    ratios: Dict[str, float]
    counter: FlopsCounter
    distortion: float


@contextlib.contextmanager
def preprocessed_once(model: nn.Module, cache: Optional[dict] = None):
    """Within the block, the model's data preprocessor (voxelization) runs once per batch
    object: a keep ratio acts after it, so every combination sees the same voxels.
    ``cache``: kept by the caller to reuse over several blocks (the batches must live as
    long: they are keyed by identity)."""
    pre = model.data_preprocessor
    cache = {} if cache is None else cache
    forward = pre.forward

    def once(data, training=False):
        key = (id(data), training)
        if key not in cache:
            cache[key] = forward(data, training)
        return cache[key]

    own = pre.__dict__.get('forward')  # an instance's own forward (a patch), if any
    pre.forward = once
    try:
        yield
    finally:
        if own is None:
            del pre.forward  # the class's forward again
        else:
            pre.forward = own


@contextlib.contextmanager
def shared_stages(sites: Sequence[SpatialSite], memo: Optional[StageMemo]):
    """Within the block, the encoders holding ``sites`` resume counted eval forwards from
    the stage outputs ``memo`` keeps (``spatial/stage_memo.py``); None: no memo."""
    encoders = [] if memo is None else list({id(s.module): s.module for s in sites}.values())
    for enc in encoders:
        enc.stage_memo = memo
    try:
        yield
    finally:
        for enc in encoders:
            enc.stage_memo = None


class CombinationCounts:
    """Combinations of keep ratios counted, measured and priced when first asked for, each
    once (the model's ratios restored after each).

    Args:
        model (nn.Module): the detector, in eval mode.
        sites (Sequence[SpatialSite]): the sites to set.
        batches (Sequence[dict]): the calibration batches (this rank's).
        reference (list): per-batch head outputs of the reference state.
        outputs (Callable): the head-output extractor.
        price (Callable): ``price(option) -> cost model`` of the budget under the
            combination, called with its ratios in force (voxelization not cached).
        lambdas (tuple[float, float]): box and confidence weights of the distortion.
        progress (bool): count the combinations on a progress bar. Defaults to False.
        memo (StageMemo, optional): the encoder stage outputs shared by the combinations'
            forwards (the calibration pass may have filled it). None: a new one.
            Defaults to None.
    """

    def __init__(self, model: nn.Module, sites: Sequence[SpatialSite],
                 batches: Sequence[dict], reference: list, outputs: Callable,
                 price: Callable, lambdas=(0.0, 1.0), progress: bool = False,
                 memo: Optional[StageMemo] = None):
        self.bar = progress_bar(0, progress)
        self.model, self.sites, self.batches = model, list(sites), batches
        self.reference, self.outputs, self.lambdas, self.price = reference, outputs, \
            lambdas, price
        self.options: Dict[tuple, KeepCombination] = {}  # counted here or added
        self.forwards = 0  # combinations counted here (one forward over the frames each)
        self.costs: Dict[tuple, object] = {}
        self.seconds = dict(count=0.0, price=0.0)
        self._voxels: dict = {}  # the data preprocessor's outputs, per batch
        self.memo = StageMemo() if memo is None else memo

    def key(self, ratios: Dict[str, float]) -> tuple:
        return tuple(float(ratios[s.name]) for s in self.sites)

    @torch.no_grad()
    def get(self, ratios: Dict[str, float]) -> KeepCombination:
        """The combination counted and measured with dense weights (and priced)."""
        key = self.key(ratios)
        if key not in self.options:
            ratios = {s.name: float(ratios[s.name]) for s in self.sites}
            with ratios_in_force(self.sites, ratios):
                t0 = time.perf_counter()
                with preprocessed_once(self.model, self._voxels), \
                        shared_stages(self.sites, self.memo):
                    counter, distortion = counted_distortion(
                        self.model, self.batches, self.reference, self.outputs,
                        self.lambdas)
            self.seconds['count'] += time.perf_counter() - t0
            self.forwards += 1
            self.add(ratios, counter, distortion)
            if self.bar:
                self.bar.update()
        return self.options[key]

    def add(self, ratios: Dict[str, float], counter: FlopsCounter,
            distortion: float = 0.0) -> KeepCombination:
        """A combination counted on the calibration frames (by ``get``, or elsewhere: the
        calibration pass counts the model as trained, the reference itself: distortion
        0), priced here with its ratios in force."""
        key = self.key(ratios)
        if key not in self.options:
            ratios = {s.name: float(ratios[s.name]) for s in self.sites}
            option = KeepCombination(ratios, counter, float(distortion))
            with ratios_in_force(self.sites, ratios):
                t0 = time.perf_counter()
                self.costs[key] = self.price(option)
                self.seconds['price'] += time.perf_counter() - t0
            self.options[key] = option
        return self.options[key]

    def cost(self, option: KeepCombination):
        """The cost model of a combination counted here."""
        return self.costs[self.key(option.ratios)]

    def __len__(self) -> int:
        return len(self.options)


@dataclass
class JointChoice:
    """The joint optimum and the table of every combination.

    Args:
        option (KeepCombination): the chosen combination (its keep ratio per site and count).
        masks (dict[str, Tensor]): the chosen weight masks.
        choice (list[int]): the chosen candidate per weight item.
        spatial_distortion (float): D_s of the chosen ratios.
        weight_distortion (float): the summed weight distortion of the choice.
        cost (float): the chosen model's cost under the combination's count.
        objective (float): what the search minimised, at the choice.
        table (list[dict]): per combination: ratios, spatial and weight distortion, their
            sum (the predicted distortion), the objective, cost and the weight choice
            (None where nothing fits the budget).
        converged (bool): whether the search ended converged (a coordinate search that
            stopped at ``max_sweeps`` still moving did not). Defaults to True.
    """
    option: KeepCombination
    masks: Dict[str, Tensor]
    choice: List[int]
    spatial_distortion: float
    weight_distortion: float
    cost: float
    objective: float
    table: List[Dict] = field(default_factory=list)
    converged: bool = True

    @property
    def ratios(self) -> Dict[str, float]:
        return self.option.ratios

    @classmethod
    def of_row(cls, row: dict, space: 'CombinationCounts', masks: Dict[str, Tensor],
               table: List[Dict], converged: bool = True) -> 'JointChoice':
        """The choice a row of ``table`` describes (its combination counted in ``space``,
        ``masks`` its weight choice's; ``converged``: the search's)."""
        return cls(space.get(row['ratios']), masks, list(row['choice']),
                   row['spatial_distortion'], row['weight_distortion'], row['cost'],
                   row['objective'], table, converged)

    @property
    def predicted_distortion(self) -> float:
        """D_s + D_w: the additive prediction of the chosen model's distortion."""
        return self.spatial_distortion + self.weight_distortion


def joint_search(space: CombinationCounts, search, candidates: Dict[str, List[float]],
                 start: Dict[str, float],
                 problem_of: Callable[[KeepCombination], Optional[WeightProblem]],
                 allocator: Allocator, objective: Callable = SumObjective()) -> JointChoice:
    """The combination and weight choice of least objective within the budget, over the
    combinations ``search`` scores.

    Args:
        space (CombinationCounts): counts combinations on demand (those already counted are
            scored first, in their order).
        search (GridSearch | CoordinateSearch): a ``SPATIAL_SEARCHES`` search (the
            ``spatial=`` section's ``SpatialSpec.search``).
        candidates (dict[str, list[float]]): site -> its values.
        start (dict[str, float]): the ratios in force before pruning (scored first).
        problem_of (Callable): combination -> the weight problem under its count (None if
            its floor alone is over the budget).
        allocator (Allocator): the weight allocator (one with ``uses_curves``).
        objective (Callable): ``objective(D_s, D_w)``, a ``JOINT_OBJECTIVES`` piece (the
            ``spatial=`` section's ``SpatialSpec.objective``). Defaults to the sum.

    Returns:
        JointChoice: the optimum and the table (every scored combination).
    """
    rows: Dict[tuple, dict] = {}
    best = None

    def score(ratios: Dict[str, float]) -> Optional[float]:
        nonlocal best
        opt = space.get(ratios)
        key = space.key(opt.ratios)
        if key in rows:
            return rows[key]['objective']
        row = rows[key] = dict(ratios=dict(opt.ratios), spatial_distortion=opt.distortion,
                               weight_distortion=None, predicted_distortion=None,
                               objective=None, cost=None)
        problem = problem_of(opt)
        if problem is None:
            return None
        try:
            masks, choice = allocator.allocate(problem)
        except BudgetBelowFloor:  # nothing of the weights fits at this combination
            return None
        weight = float(sum(problem.item_distortions[i][k] for i, k in enumerate(choice)))
        cost = problem.total(masks)
        value = float(objective(opt.distortion, weight))
        row.update(weight_distortion=weight, predicted_distortion=opt.distortion + weight,
                   objective=value, cost=cost, choice=[int(k) for k in choice])
        if best is None or value < best.objective:
            best = JointChoice(opt, masks, list(choice), opt.distortion, weight, cost, value)
        return value

    score(start)
    for opt in list(space.options.values()):
        score(opt.ratios)
    converged = search.run(candidates, best.ratios if best is not None else dict(start),
                           score)
    if best is None:
        raise BudgetBelowFloor('no combination of the spatial grid and the weight candidates '
                               'fits the budget: raise the target or add smaller keep ratios')
    by_key = {space.key(o.ratios): i for i, o in enumerate(space.options.values())}
    best.table = sorted(rows.values(), key=lambda r: by_key[space.key(r['ratios'])])
    best.converged = bool(converged)
    if not converged:
        print_log(f'joint allocation: {type(search).__name__} stopped at its max_sweeps while '
                  'still moving: a change of one site may still improve the choice (raise '
                  'max_sweeps, or search the grid)', logger='current', level=logging.WARNING)
    print_log(f'joint allocation: keep ratios {best.ratios}, spatial distortion '
              f'{best.spatial_distortion:.4g}, weight distortion {best.weight_distortion:.4g} '
              f'({len(rows)} combinations scored, {type(search).__name__})',
              logger='current')
    return best
