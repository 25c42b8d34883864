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
multiplies those pairs. Every combination of the grid is counted once; for each, DM3D's DP
gives the optimal weight choice within the budget, and the combination of least objective
wins: the optimum of the objective over the grid (the DP's own budget rounding aside).
"""
import contextlib
import itertools
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
from mmengine.logging import print_log
from mmengine.utils import ProgressBar
from torch import Tensor, nn

from ..cost import FlopsCounter
from ..weight.allocators import Allocator, WeightProblem
from ..weight.calibration import counted_distortion
from .sites import SpatialSite, find_sites, ratios_in_force, set_keep_ratios

DEFAULT_GRID = (1.0, 0.75, 0.5, 0.25)


class SpatialGrid:
    """The ``spatial=`` section of a pruning config: which sites the allocation chooses the
    keep ratio of, and from which values (each site's ratio in force is always one of them).
    Every combination is run once on the calibration frames: the search costs
    ``prod(len(values))`` forwards.

    Args:
        grid (Sequence[float] | dict): keep ratios tried at every site, or site name ->
            its own keep ratios. Defaults to (1.0, 0.75, 0.5, 0.25).
        sites (Sequence[str], optional): the sites to choose (``<module>.<location>``, e.g.
            ``middle_encoder.bev``); None: every site the finders find. Defaults to None.
        finders (Sequence[str | dict]): ``SPATIAL_SITES`` finders. Defaults to
            ('ada3d', 'spss').
    """

    def __init__(self, grid: Union[Sequence[float], Dict[str, Sequence[float]]] = DEFAULT_GRID,
                 sites: Optional[Sequence[str]] = None,
                 finders: Sequence = ('ada3d', 'spss')):
        self.grid = {k: self._values(k, v) for k, v in grid.items()} \
            if isinstance(grid, dict) else self._values('grid', grid)
        self.sites = None if sites is None else list(sites)
        self.finders = list(finders)

    @staticmethod
    def _values(name, values) -> List[float]:
        values = sorted({float(v) for v in values}, reverse=True)
        if not values or not all(0 < v <= 1 for v in values):
            raise ValueError(f'spatial grid {name}: keep ratios must be in (0, 1], got {values}')
        return values

    def sites_of(self, model: nn.Module) -> List[SpatialSite]:
        """The model's sites this grid chooses (ValueError if it has none)."""
        sites = find_sites(model, self.finders, self.sites)
        if not sites:
            raise ValueError('pruning.spatial is set but the model has no spatial pruning site '
                             f'({", ".join(map(str, self.finders))}): use an Ada3D or SPSS '
                             'detector, or drop spatial=')
        if isinstance(self.grid, dict):
            missing = [s.name for s in sites if s.name not in self.grid]
            unknown = sorted(set(self.grid) - {s.name for s in sites})
            if missing or unknown:
                raise ValueError(f'spatial grid: sites without values {missing}, values for '
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

    def combinations(self, sites: Sequence[SpatialSite]) -> List[Dict[str, float]]:
        """Every combination of the sites' candidates (every site at its largest first)."""
        names = [s.name for s in sites]
        return [dict(zip(names, combo))
                for combo in itertools.product(*(self.values(s) for s in sites))]


@dataclass
class SpatialOption:
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
def preprocessed_once(model: nn.Module):
    """Within the block, the model's data preprocessor (voxelization) runs once per batch
    object: a keep ratio acts after it, so every combination sees the same voxels."""
    pre = model.data_preprocessor
    cache = {}
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


@torch.no_grad()
def spatial_options(model: nn.Module, sites: Sequence[SpatialSite], grid: SpatialGrid,
                    batches: Sequence[dict], reference: list, outputs: Callable,
                    lambdas=(0.0, 1.0), progress: bool = False) -> List[SpatialOption]:
    """Count and measure every combination of the grid (the model's ratios restored).

    Args:
        model (nn.Module): the detector, in eval mode, dense weights.
        sites (Sequence[SpatialSite]): the sites to set.
        grid (SpatialGrid): the values.
        batches (Sequence[dict]): the calibration batches (this rank's).
        reference (list): per-batch head outputs of the reference state.
        outputs (Callable): the head-output extractor.
        lambdas (tuple[float, float]): box and confidence weights of the distortion.
        progress (bool): show a progress bar. Defaults to False.

    Returns:
        list[SpatialOption]: one per combination.
    """
    combos = grid.combinations(sites)
    bar = ProgressBar(len(combos)) if progress else None
    options = []
    with ratios_in_force(sites), preprocessed_once(model):
        for ratios in combos:
            set_keep_ratios(sites, ratios)
            options.append(SpatialOption(ratios, *counted_distortion(
                model, batches, reference, outputs, lambdas)))
            if bar:
                bar.update()
    return options


@dataclass
class JointChoice:
    """The joint optimum and the table of every combination.

    Args:
        option (SpatialOption): the chosen combination (its keep ratio per site and count).
        masks (dict[str, Tensor]): the chosen weight masks.
        choice (list[int]): the chosen candidate per weight item.
        spatial_distortion (float): D_s of the chosen ratios.
        weight_distortion (float): the summed weight distortion of the choice.
        cost (float): the chosen model's cost under the combination's count.
        table (list[dict]): per combination: ratios, spatial and weight distortion,
            objective, cost and the weight choice (None where nothing fits the budget).
    """
    option: SpatialOption
    masks: Dict[str, Tensor]
    choice: List[int]
    spatial_distortion: float
    weight_distortion: float
    cost: float
    table: List[Dict] = field(default_factory=list)

    @property
    def ratios(self) -> Dict[str, float]:
        return self.option.ratios

    @property
    def objective(self) -> float:
        return self.spatial_distortion + self.weight_distortion


def joint_search(options: Sequence[SpatialOption],
                 problem_of: Callable[[SpatialOption], Optional[WeightProblem]],
                 allocator: Allocator) -> JointChoice:
    """The combination and weight choice of least objective within the budget.

    Args:
        options (Sequence[SpatialOption]): the counted combinations.
        problem_of (Callable): combination -> the weight problem under its count (None if
            its floor alone is over the budget).
        allocator (Allocator): the weight allocator (one with ``uses_curves``).

    Returns:
        JointChoice: the optimum and the table.
    """
    best, table = None, []
    for opt in options:
        row = dict(ratios=dict(opt.ratios), spatial_distortion=opt.distortion,
                   weight_distortion=None, objective=None, cost=None)
        table.append(row)
        problem = problem_of(opt)
        if problem is None:
            continue
        try:
            masks, choice = allocator.allocate(problem)
        except ValueError:  # nothing of the weights fits at this combination
            continue
        weight = float(sum(problem.item_distortions[i][k] for i, k in enumerate(choice)))
        cost = problem.total(masks)
        row.update(weight_distortion=weight, objective=opt.distortion + weight, cost=cost,
                   choice=[int(k) for k in choice])
        if best is None or opt.distortion + weight < best.objective:
            best = JointChoice(opt, masks, list(choice), opt.distortion, weight,
                               cost)
    if best is None:
        raise ValueError('no combination of the spatial grid and the weight candidates fits '
                         'the budget: raise the target or add smaller keep ratios')
    best.table = table
    print_log(f'joint allocation: keep ratios {best.ratios}, spatial distortion '
              f'{best.spatial_distortion:.4g}, weight distortion {best.weight_distortion:.4g} '
              f'({len(options)} combinations)', logger='current')
    return best
