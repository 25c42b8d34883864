"""DM3D post-training weight pruning (Alg. 2) and the baselines, behind one registry entry.

    pruning = dict(type='DM3DPruner', flops_target=0.5, method='dm3d', estimator='fisher',
                   num_ratios=32, parts=['middle_encoder', 'backbone', 'neck'])

``prune(model, batches)`` counts the joint FLOPs on the calibration frames (post spatial
pruning, whatever spatial modules the model has), selects the layers, computes per-layer
distortion curves, allocates sparsity with the DP against the FLOPs cost model, applies the
masks, and returns a PruneResult with everything the report needs.
"""
import fnmatch
import logging
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Union

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from ..cost import count_flops
from ..cost.cost_model import CostModel, kept_per_offset
from ..cost.latency_cost import build_cost
from ..cost.layouts import mask_at
from ..errors import BudgetBelowFloor, OverBudget, UserError
from ..joint.search import JointChoice, SpatialGrid, SpatialOptions, joint_search, shared_stages
from ..joint.sites import keep_ratios, ratios_in_force, set_keep_ratios
from ..registry import ALLOCATORS, ESTIMATORS, PRUNERS, build_piece
from ..spatial.stage_memo import StageMemo
from ..structured.channel_graph import WidthGroup, find_channel_graph, producer_index
from ..structured.channel_masks import channel_side_masks
from ..structured.granularity import (
    ChannelGranularity,
    Granularity,
    WeightGranularity,
    build_granularity,
)
from ..structured.slim import kept_channels, slim_model
from ..weight.allocators import Allocator, WeightProblem
from ..weight.calibration import calibration_pass, counted_distortion
from ..weight.curves import taylor_scores
from ..weight.discovery import find_prunable_layers, settle_selection
from ..weight.distributed import reduce_counter, shard, world
from ..weight.estimators import CurveInputs, DistortionEstimator
from ..weight.head_outputs import BOX_WEIGHTINGS, DEFAULT_LAMBDAS, build_head_outputs
from ..weight.masks import MaskSet
from .result import LayerResult, PruneResult

#: names of the registered allocators (``method=``) and estimators (``estimator=``)
METHODS = tuple(ALLOCATORS.module_dict)
ESTIMATOR_NAMES = tuple(ESTIMATORS.module_dict)


BUDGET_OF = ('model', 'parts')


class _Attempt(NamedTuple):
    """One allocation of the recount loop: the pruned model's counted ``total`` and what
    made it (``attempt``: its index; ``target``: the budget it was allocated to)."""
    total: float
    masks: Dict[str, Tensor]
    counted: CostModel
    measured: float
    curves: Dict[str, Dict[str, list]]
    attempt: int
    flops_predicted: float
    joint: Optional[JointChoice]
    target: float


# allocations are tried (``recount_attempts``) until the recounted pruned model fits the
# budget (spatial models whose kept sites follow the pruned weights count other FLOPs than
# the dense pass predicted; a pruned model's measured time is not the sum of its convs'
# isolated timings) or until it counts within this fraction below the budget
RECOUNT_TOLERANCE = 0.005


def next_target(tried: List[tuple], aim: float, ceiling: float) -> float:
    """The allocator's next target after allocations that missed: ``tried`` holds
    (target, what the pruned model counted or measured) per allocation. The first miss
    scales the target by aim / measured; later ones take the secant through the last two
    (exact where the measured cost is affine in the target, as when the prediction misses a
    fixed share); never above ``ceiling`` (dense) nor at or below 0."""
    t1, m1 = tried[-1]
    nxt = t1 * aim / m1
    if len(tried) > 1:
        t0, m0 = tried[-2]
        if t1 != t0 and (m1 - m0) / (t1 - t0) > 0:
            nxt = t1 + (aim - m1) * (t1 - t0) / (m1 - m0)
    return min(max(nxt, 1e-6 * t1), ceiling)


@PRUNERS.register_module()
class DM3DPruner:
    """Prunes a detector's weights to a fraction of its joint FLOPs, by DM3D or a baseline.

    ``prune(model, batches)`` runs one calibration pass (joint FLOPs counted post spatial
    pruning, dense reference outputs, gradient rows), selects the layers that ran and reach
    the outputs, computes per-layer distortion curves, allocates sparsity with the DP against
    the FLOPs cost model, applies the masks and returns a :class:`PruneResult`.

    Args:
        flops_target (float): fraction of the dense joint FLOPs to keep, in (0, 1].
        method (str | dict): the allocator (``ALLOCATORS``): ``'dm3d'`` (the DP over
            distortion curves) or a baseline (``'uniform'``, ``'global_magnitude'``,
            ``'lamp'``, ``'erk'``), or a ``dict(type=..., **args)``. A constraint below the
            allocator does not honour is an error. Defaults to ``'dm3d'``.
        estimator (str | dict): the distortion curves (``ESTIMATORS``): ``'fisher'``,
            ``'taylor2'`` (the paper's Eq. 9/13) or ``'actual'`` (measured), or a
            ``dict(type=..., **args)``; used by allocators that allocate over curves.
            Defaults to ``'fisher'``.
        num_ratios (int): candidate pruning ratios per layer (K). Defaults to 32.
        parts (Sequence[str], optional): detector parts to prune (``middle_encoder``,
            ``backbone``, ``neck``, ``bbox_head``, ...); None: all. Defaults to None.
        include (Sequence[str], optional): fnmatch patterns of layer names to keep in the
            selection (explicit: a named layer that never runs is an error). Defaults to None.
        exclude (Sequence[str], optional): fnmatch patterns to leave out. Defaults to None.
        include_head_outputs (bool): also prune the heads' final prediction convs.
            Defaults to False.
        lambdas (tuple[float, float]): (lambda_b, lambda_c) weights of the box and
            class-confidence distortion. Defaults to (0, 1).
        kappa (float): damping of the empirical Fisher (kappa I + G^T G / M), passed to a
            ``fisher`` / ``taylor2`` estimator given by name. Defaults to 0.
        num_projections (int): Hutchinson projections per frame. Defaults to 2.
        min_density (float): lowest weight density a layer may get. Defaults to 0.
        max_density (float): highest weight density a pruned layer may keep. Defaults to 1.
        keep_dense (Sequence[str]): selected layers that stay dense. Defaults to ().
        num_buckets (int): budget resolution of the DP. Defaults to 10000.
        seed (int): seed of the Hutchinson projections. Defaults to 0.
        progress (bool): show a progress bar. Defaults to True.
        calib (dict, optional): calibration frames (``frames``, ``split``); read by the
            tools and the hook, not by :meth:`prune`. Defaults to None.
        box_weighting (str): ``'confidence'`` or ``'none'`` (see
            :class:`~dm3d_mm.weight.head_outputs.HeadOutputs`). Defaults to ``'confidence'``.
        budget_of (str): ``'model'``: the target is a fraction of the whole detector's FLOPs;
            ``'parts'``: of the selected layers' own FLOPs (Tab. 4). Defaults to ``'model'``.
        head_outputs (dict, optional): a ``HEAD_OUTPUTS`` config; None chooses the
            extractor of the model's head family. Defaults to None.
        cost (str | dict): what the budget counts (``COST_MODELS``): ``'flops'``, the exact
            joint FLOPs, or ``'latency'`` (``dict(type='latency', widths=..., repeats=...)``):
            seconds per frame measured on the device the pruner runs on, so that
            ``flops_target`` is a fraction of the dense detector's measured time (see
            ``cost/latency_cost.py``; a mask saves time only where it removes whole
            channels). Defaults to 'flops'.
        granularity (str | dict): what is pruned together (``GRANULARITIES``): ``'weight'``
            (unstructured), ``'offset'`` (whole kernel offsets) or ``'channel'`` (whole output
            channels of the convs a ``CHANNEL_GRAPHS`` entry describes: the sparse encoder's,
            the 2D backbone's, whose stage convs share one width, and the neck's), or a
            ``dict(type=..., **args)`` of one (``dict(type='channel', round_to=8)``), for
            every layer; or a dict of fnmatch patterns of layer names -> granularity (first
            match wins; layers matching none are ``'weight'``), e.g.
            ``{'middle_encoder.*': 'offset'}``.
            Structured granularities need ``method='dm3d'``. Defaults to 'weight'.
        spatial (dict, optional): the joint allocation (``joint/search.py``): the keep
            ratios of the model's spatial sites are chosen together with the weight
            densities, ``dict(grid=(1.0, 0.75, 0.5, 0.25), sites=None,
            finders=('ada3d', 'spss'))`` (see :class:`~dm3d_mm.joint.search.SpatialGrid`;
            the ratios the model has are always candidates). ``flops_target`` is then a
            fraction of the model with every site at its largest ratio (no dropping; an
            Ada3D model's 2D convs still skip empty BEV pixels there), distortions are
            measured against the model as it is, and the chosen ratios stay in force on the
            pruned model. With ``cost='latency'`` each combination is priced in seconds
            (its whole detector timed; see ``cost/latency_cost.py``).
            Needs ``method='dm3d'`` and ``budget_of='model'``.
            Defaults to None (the keep ratios stay as they are).
        reference (dict, optional): what ``flops_target`` is a fraction of, where it is not
            the model being pruned: ``dict(name=..., gmacs=...)``, e.g. the dense detector a
            spatial model was trained from (``tools/prune.py --reference CONFIG CKPT``
            counts it on the calibration frames). Needs ``cost='flops'`` and
            ``budget_of='model'``. Defaults to None.
        recount_attempts (int): allocations tried until the pruned model, counted afresh
            as it will run, fits the budget. Defaults to 4.
        allow_over_budget (bool): where no attempt fits, return the closest pruned model
            (``PruneResult.fits`` False, the report says so on its first line) instead of
            raising :class:`~dm3d_mm.errors.OverBudget`. Defaults to False.
    """

    def __init__(self, flops_target: float, method: Union[str, dict] = 'dm3d',
                 estimator: Union[str, dict] = 'fisher',
                 num_ratios: int = 32, parts: Optional[Sequence[str]] = None,
                 include: Optional[Sequence[str]] = None,
                 exclude: Optional[Sequence[str]] = None,
                 include_head_outputs: bool = False, lambdas=DEFAULT_LAMBDAS,
                 kappa: float = 0.0,
                 num_projections: int = 2, min_density: float = 0.0,
                 max_density: float = 1.0, keep_dense: Sequence[str] = (),
                 num_buckets: int = 10000, seed: int = 0, progress: bool = True,
                 calib: Optional[dict] = None, box_weighting: str = 'confidence',
                 budget_of: str = 'model', head_outputs: Optional[dict] = None,
                 granularity: Union[str, Dict[str, str]] = 'weight',
                 cost: Union[str, dict] = 'flops', spatial: Optional[dict] = None,
                 reference: Optional[dict] = None, recount_attempts: int = 4,
                 allow_over_budget: bool = False):
        if isinstance(flops_target, bool) or not isinstance(flops_target, (int, float)) \
                or not 0 < flops_target <= 1:
            raise UserError(f'flops_target is a fraction of the dense FLOPs in (0, 1], got '
                             f'{flops_target}')
        self.allocator: Allocator = build_piece(method, ALLOCATORS, 'method', (Allocator, ))
        self.method = _type_name(method, ALLOCATORS)
        if isinstance(estimator, str) and kappa and estimator in ('fisher', 'taylor2'):
            estimator = dict(type=estimator, kappa=kappa)
        elif kappa:
            raise UserError(f'kappa damps the Fisher of a fisher or taylor2 estimator given by '
                             f'name; estimator {estimator!r} takes its own arguments')
        self.estimator_piece: DistortionEstimator = build_piece(
            estimator, ESTIMATORS, 'estimator', (DistortionEstimator, ))
        if not 0 <= min_density <= max_density <= 1:
            raise UserError('need 0 <= min_density <= max_density <= 1')
        for name, value, least in (('num_ratios', num_ratios, 1),
                                   ('num_projections', num_projections, 1),
                                   ('num_buckets', num_buckets, 1),
                                   ('recount_attempts', recount_attempts, 1),
                                   ('seed', seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise UserError(f'pruning config: {name} is an integer >= {least}, got '
                                f'{value!r}')
        if kappa < 0:
            raise UserError(f'pruning config: kappa damps the Fisher and is >= 0, got {kappa}')
        if box_weighting not in BOX_WEIGHTINGS:
            raise UserError(f'box_weighting must be one of {BOX_WEIGHTINGS}, got '
                             f'{box_weighting!r}')
        if budget_of not in BUDGET_OF:
            raise UserError(f'budget_of must be one of {BUDGET_OF}, got {budget_of!r}')
        self.budget_of = budget_of
        one = isinstance(granularity, (str, Granularity)) or 'type' in granularity
        rules = {'*': granularity} if one else dict(granularity)
        self.granularity = {pat: build_granularity(g) for pat, g in rules.items()}
        self.allocator.check(dict(
            keep_dense=bool(keep_dense), min_density=min_density > 0,
            max_density=max_density < 1, spatial=spatial is not None,
            structured=any(not isinstance(g, WeightGranularity)
                           for g in self.granularity.values())), self.method)
        self.cost = build_cost(cost)
        self.spatial = None if spatial is None else SpatialGrid(**spatial)
        if self.spatial is not None and budget_of != 'model':
            raise UserError("spatial= (the joint allocation) needs budget_of='model'")
        self.reference = None if reference is None else dict(reference)
        if self.reference is not None:
            if set(self.reference) != {'name', 'gmacs'} or \
                    not float(self.reference['gmacs']) > 0:
                raise UserError("pruning config: reference is dict(name=..., gmacs=...) with "
                                f'gmacs > 0, got {reference!r}')
            if budget_of != 'model' or self.cost.unit != 'MACs':
                raise UserError("pruning config: a reference is a count of joint FLOPs: it "
                                "needs cost='flops' and budget_of='model'")
        self.recount_attempts = recount_attempts
        self.allow_over_budget = bool(allow_over_budget)
        self.box_weighting = box_weighting
        self.head_outputs = None if head_outputs is None else dict(head_outputs)
        self.flops_target = flops_target
        self.estimator = _type_name(estimator, ESTIMATORS)
        self.num_ratios = num_ratios
        self.select = dict(parts=parts, include=include, exclude=exclude,
                           include_head_outputs=include_head_outputs)
        self.lambdas = tuple(float(v) for v in lambdas)
        if len(self.lambdas) != 2 or min(self.lambdas) < 0 or max(self.lambdas) == 0:
            raise UserError(f'lambdas = (lambda_b, lambda_c) must be two non-negative weights, '
                             f'not both 0; got {lambdas}')
        self.num_projections = num_projections
        self.min_density, self.max_density = min_density, max_density
        self.keep_dense = list(keep_dense)
        self.num_buckets = num_buckets
        self.seed = seed
        self.progress = progress
        self.calib = dict(calib or {})
        # state of one prune(): candidates, spatial sites and their counted combinations
        self._cand: Optional[_Candidates] = None
        self._locked: Optional[Dict[str, float]] = None  # the re-ranked combination
        self._probed: List[dict] = []  # what the re-rank probed
        self._sites: list = []
        self._space: Optional[SpatialOptions] = None
        self._candidates_of: Dict[str, list] = {}
        self._trained: Dict[str, float] = {}

    # ------------------------------------------------------------------------------
    def outputs(self, model: nn.Module):
        """The head-output extractor this pruner measures distortion with on ``model``."""
        return build_head_outputs(model, self.head_outputs, self.box_weighting)

    def cost_model(self, model: nn.Module, batches: Sequence[dict], names) -> CostModel:
        """The joint FLOPs cost model of ``model`` as it is now on ``batches`` (all ranks)."""
        counter = count_flops(model, batches, self.outputs(model))
        reduce_counter(counter)
        return CostModel(counter, names)

    def _gradient_mode(self) -> Optional[str]:
        return self.estimator_piece.gradient_mode if self.allocator.uses_curves else None

    def prune(self, model: nn.Module, batches: Sequence[dict]) -> PruneResult:
        """Prune ``model`` in place (masks applied).

        Args:
            model (nn.Module): an mmdet3d detector (eval mode is used; the mode is restored).
            batches (Sequence[dict]): calibration batches of one frame each, as a dataloader
                with ``pseudo_collate`` gives them.

        Returns:
            PruneResult: masks, per-layer allocation, FLOPs before / after, timings.
        """
        if not batches:
            raise UserError('no calibration frames')
        batches, self._frame_ids = shard(batches)  # this rank's share (all of them alone)
        was_training = model.training
        model.eval()
        self._cand = None
        self._sites = self.spatial.sites_of(model) if self.spatial is not None else []
        trained = keep_ratios(self._sites)
        try:
            return self._prune(model, batches, trained)
        except BaseException:
            set_keep_ratios(self._sites, trained)
            raise
        finally:
            model.train(was_training)

    def _prune(self, model, batches, trained) -> PruneResult:
        self._trained = dict(trained)
        outputs = self.outputs(model)
        candidates = find_prunable_layers(model, **self.select)
        for pat in self.keep_dense:
            if pat not in candidates:
                raise UserError(f'keep_dense names {pat!r}, which is not a selected layer')
        timings = {}
        t0 = time.perf_counter()
        # the encoder stages of the model as trained are kept for the combinations' forwards
        memo = StageMemo() if self._sites else None
        with shared_stages(self._sites, memo):
            calib = calibration_pass(model, candidates, batches, outputs, self.lambdas,
                                     self._gradient_mode(), self.num_projections, self.seed,
                                     self.progress and world()[0] == 0,
                                     frame_ids=self._frame_ids)
        timings['calibration_pass'] = time.perf_counter() - t0
        layers, left_out = settle_selection(candidates, calib.counter.layers,
                                            calib.reached, **self.select)
        for reason, names in left_out.items():
            print_log(f'DM3DPruner: left out {len(names)} layer(s) that {reason}: '
                      f'{", ".join(names)}', logger='current')
        self._space = None
        if self._sites:  # combinations of keep ratios, counted when the search asks
            t0 = time.perf_counter()
            with ratios_in_force(self._sites):  # latency tables timed at the trained ratios
                self._candidates_of = self.spatial.candidates(self._sites)
                price = self.cost.option_pricer(model, batches,
                                                CostModel(calib.counter, list(layers)))
            self._space = SpatialOptions(
                model, self._sites, batches, calib.reference, outputs,
                lambda o: price(CostModel(o.counter, list(layers))), self.lambdas,
                self.progress and world()[0] == 0, memo)
            # the model as trained is the calibration pass's count (and the reference of
            # every distortion); the joint budget is a fraction of the model with every
            # site at its largest ratio
            self._space.add(trained, calib.counter)
            largest = self._space.get({n: v[0] for n, v in self._candidates_of.items()})
            cm = self._space.cost(largest)
            flops = cm.flops
            timings['spatial_options'] = self._space.seconds['count']
            t0 += self._space.seconds['count']  # the cost model's time: tables + wholes
        else:
            flops = CostModel(calib.counter, list(layers))
            cm = self.cost.build(model, batches, flops)  # what the budget counts
        if cm is not flops:
            timings['cost_model'] = time.perf_counter() - t0
        keep_dense = [n for n in self.keep_dense if n in layers]
        # dense is every selected weight kept, whatever zeros the weights hold now (re-pruning
        # a pruned checkpoint measures against dense, not against the pruned model)
        own = flops.dense_total if cm is flops else cm.total()
        # what the target is a fraction of: the given reference (a dense detector counted
        # on the same frames), else the model itself (spatial sites at their largest ratios)
        before = own if self.reference is None else float(self.reference['gmacs']) * 1e9
        reference = self._reference_name(trained)
        # 'parts': the selected layers go to flops_target of their own joint FLOPs (Tab. 4:
        # a part alone often cannot reach a fraction of the whole model)
        budget = self.flops_target * before if self.budget_of == 'model' else \
            cm.floor + self.flops_target * (before - cm.floor)
        sparsest = self._sparsest(model, layers, keep_dense)
        reachable = self._reachable(cm, sparsest)
        if budget < reachable - 1e-6 * before and self._sites:
            # the smallest ratios everywhere give the floor (a smaller keep ratio never adds
            # pairs); counted only where the budget is below what the others reach
            spent = dict(self._space.seconds)
            self._space.get({n: v[-1] for n, v in self._candidates_of.items()})
            self._charge_options(timings, spent)
            reachable = self._reachable(cm, sparsest)
        if budget < reachable - 1e-6 * before:
            raise BudgetBelowFloor(
                f'flops_target={self.flops_target} asks for {cm.describe(budget)} per frame '
                f'but the floor is {cm.describe(reachable)} ({reachable / before:.3f} of '
                f'{reference}): layers that are not pruned cost {cm.describe(cm.floor)}. '
                'Raise the target or prune more parts.')
        curves: Dict[str, Dict[str, list]] = {}
        # every parameter and buffer as before pruning (masks also zero norms and consumers'
        # input slices): a repeated allocation starts from them
        state = [(t, t.detach().clone()) for t in (*model.parameters(), *model.buffers())]
        # joint FLOPs of the weights as they are before pruning (masks go into the weights)
        flops_before = flops.dense_total
        layer_before = {n: flops.layers[n].dense_macs / flops.frames for n in layers}
        verb = 'counts' if cm is flops else 'measures'

        def fit(target: float):
            """Allocate at ``target``, count the pruned model, allocate again (the target
            scaled by how far the count missed) until it fits: (the best attempt, the last
            attempt's index)."""
            best, closest, tried = None, None, []
            for attempt in range(self.recount_attempts):
                allocations.append(target)
                if attempt:  # allocate again, the target scaled by how far the count missed
                    for t, saved in state:
                        t.data.copy_(saved)
                tried_curves: Dict[str, Dict[str, list]] = {}
                try:
                    masks, alloc_cm, joint = self._allocate(
                        model, layers, calib, batches, outputs, cm, target, keep_dense,
                        timings, tried_curves)
                except BudgetBelowFloor:  # a lowered target below what the allocator reaches
                    if not attempt:
                        raise
                    break
                if joint is not None:  # the chosen keep ratios go in force with the masks
                    set_keep_ratios(self._sites, joint.ratios)
                predicted = alloc_cm.total(masks)  # before the masks go into the weights
                if predicted > target * (1 + 1e-9):
                    raise RuntimeError(f'{self.method} allocated {predicted:.6g} {cm.unit}, '
                                       f'over the budget {target:.6g} (a bug in the '
                                       'allocator)')
                # the joint FLOPs predicted (a latency cost model holds its FLOPs model)
                flops_predicted = (alloc_cm if joint is not None else flops).flops.total(masks)
                MaskSet(model, masks).apply()
                # the pruned model counted afresh on the same frames (a spatial module may
                # keep other sites once the weights upstream of it are pruned), its distortion
                # measured
                t0 = time.perf_counter()
                recount, measured = counted_distortion(model, batches, calib.reference,
                                                       outputs, self.lambdas)
                timings['recount'] = timings.get('recount', 0.0) + time.perf_counter() - t0
                counted = CostModel(recount, [n for n in layers if n in recount.layers])
                # what the budget counts, measured on the pruned model as it will run
                t0 = time.perf_counter()
                total = self.cost.measure(lambda: self._as_it_runs(model, layers), batches,
                                          counted, masks)
                if cm is not flops:
                    timings['measure'] = timings.get('measure', 0.0) + \
                        time.perf_counter() - t0
                fits = total <= budget * (1 + 1e-9)
                this = _Attempt(total, masks, counted, measured, tried_curves, attempt,
                                flops_predicted, joint, target)
                if fits and (best is None or total > best.total):
                    best = this
                if closest is None or total < closest.total:  # where none fits: the least
                    closest = this
                # nothing moved: the choice stands
                exact = abs(total - predicted) <= 1e-9 * before
                # a measured time is not met more closely by aiming higher: stop once it fits
                if fits and (cm is not flops or exact or
                             total >= budget * (1 - RECOUNT_TOLERANCE)):
                    break
                tried.append((target, total))
                if attempt + 1 == self.recount_attempts:
                    break
                # not below what the sparsest allocation costs (the allocator cannot go lower)
                target = max(next_target(tried, budget * (1 - RECOUNT_TOLERANCE / 2),
                                         own), min(reachable * (1 + 1e-9), target))
                print_log(f'DM3DPruner: the pruned model {verb} {total / before:.4f} of '
                          f'{reference} for a budget of {budget / before:.4f}: allocating '
                          f'again to {target / before:.4f} of the prediction',
                          logger='current')
            if best is None:
                best = closest
                line = (f'after {attempt + 1} allocation(s) no pruned model fits: the closest '
                        f'{verb} {cm.describe(best.total)} per frame '
                        f'({best.total / before:.4f} of {reference}), over the budget '
                        f'{cm.describe(budget)} ({self.flops_target:.4g})')
                if not self.allow_over_budget:  # the model as it came, then the error
                    for t, saved in state:
                        t.data.copy_(saved)
                    raise OverBudget(f'{line}; raise the target, or allow_over_budget=True '
                                     '(tools/prune.py --allow-over-budget) keeps the closest '
                                     'model')
                print_log(f'DM3DPruner: {line}; kept as allow_over_budget asks',
                          logger='current', level=logging.WARNING)
            return best, attempt

        self._locked, self._probed = None, []
        allocations: List[float] = []  # the target of every allocation tried
        best, attempt = fit(budget)
        if self._sites and self.spatial.rerank is not None and best.joint is not None:
            # the best few combinations at the target that fitted, probed from the weights as
            # trained; another choice is allocated again there, its ratios kept
            for t, saved in state:
                t.data.copy_(saved)
            t0 = time.perf_counter()
            row, self._probed = self.spatial.rerank.rerank(
                best.joint.table, self._cand.masks_of, model, batches, calib.reference, outputs,
                self.lambdas)
            timings['rerank'] = time.perf_counter() - t0
            attempt = None  # the chosen allocation goes in force again below
            if row['ratios'] != best.joint.ratios:
                self._locked = dict(row['ratios'])
                best, attempt = fit(best.target)
        _, masks, counted, measured, tried_curves, chosen, flops_predicted, joint, _ = best
        if chosen != attempt:  # an earlier allocation fitted the budget better
            for t, saved in state:
                t.data.copy_(saved)
            MaskSet(model, masks).apply()
            if joint is not None:
                set_keep_ratios(self._sites, joint.ratios)
        curves.update(tried_curves)
        timings['total'] = sum(timings.values())
        cost = dict(unit=cm.unit, before=before, after=best.total, budget=budget,
                    reference=reference, allocations=len(allocations))
        cm = flops  # the report counts joint FLOPs whatever the budget counted
        predicted, after = flops_predicted, counted.total(masks)
        if self.reference is None:  # the joint FLOPs of the model as given
            before = flops_before
        results = [LayerResult(n, cm.layers[n].part, m.weight.numel(),
                               1.0 - float(masks[n].float().mean()), layer_before[n],
                               counted.layer_macs(n, masks[n]) if n in counted.layers else 0.0,
                               curves.get(n, {}).get('chosen_distortion'))
                   for n, m in layers.items()]
        return PruneResult(self.method, self.estimator if self.allocator.uses_curves else None,
                           self.flops_target, before, after, cm.floor, results, masks,
                           timings, curves, measured, budget_of=self.budget_of,
                           left_out=left_out, head_outputs=repr(outputs), cost=cost,
                           macs_after_predicted=predicted,
                           spatial=self._spatial_info(joint, trained),
                           fits=best.total <= budget * (1 + 1e-9))

    def _reference_name(self, trained: Dict[str, float]) -> str:
        """What ``flops_target`` is a fraction of, in words (the report's first line)."""
        if self.reference is not None:
            return str(self.reference['name'])
        what = {'model': 'the model', 'parts': "the selected layers' own cost in the model"}
        if not self._sites:
            return what[self.budget_of] + ' with every weight kept'
        largest = self.spatial.largest(self._sites, trained)
        return (f'{what[self.budget_of]} with every weight kept and its spatial sites at '
                f'keep ratios {largest}')

    def _as_it_runs(self, model: nn.Module, layers) -> nn.Module:
        """The pruned model as it will run: a slim copy where any of the pruned ``layers``
        has channel granularity (what ``tools/slim.py`` exports), the masked model itself
        otherwise."""
        if not self._channel_layers(list(layers)):
            return model
        groups = find_channel_graph(model).groups(model)
        return slim_model(model, groups, kept_channels(model, groups))

    def _spatial_info(self, joint: Optional[JointChoice], trained) -> Dict[str, object]:
        if joint is None:
            return {}
        return dict(keep_ratios=dict(joint.ratios), trained_keep_ratios=dict(trained),
                    largest=self.spatial.largest(self._sites, trained),
                    spatial_distortion=joint.spatial_distortion,
                    weight_distortion=joint.weight_distortion,
                    predicted_distortion=joint.predicted_distortion,
                    objective=joint.objective, combinations=joint.table,
                    search_converged=joint.converged,
                    **(dict(rerank=self.spatial.rerank.spec, probed=self._probed)
                       if self.spatial.rerank is not None else {}))

    def _allocate(self, model, layers, calib, batches, outputs, cm, budget, keep_dense,
                  timings, curves):
        """(masks of the selected layers within ``budget``, the cost model they were
        allocated under, the joint choice or None)."""
        if not self.allocator.uses_curves:
            t0 = time.perf_counter()
            masks, _ = self.allocator.allocate(WeightProblem(layers, cm.total, cm.floor,
                                                             budget))
            timings['allocation'] = time.perf_counter() - t0
            return masks, cm, None
        grads = {n: calib.grads[n] for n in layers}
        cand = self._candidates(model, layers, grads, batches, calib.reference, outputs,
                                keep_dense, timings)
        t0 = time.perf_counter()
        if self._sites:
            space, costs_of = self._space, {}

            def problem_of(option):
                m = space.cost(option)
                if m.floor >= budget:
                    return None
                costs_of[id(option)] = {n: m.curve_costs(n, cand.orders[n], cand.counts[n],
                                                         cand.kept[n]) for n in layers}
                return self._problem(cand, m, costs_of[id(option)], budget)

            counted = dict(space.seconds)
            joint = joint_search(space, self.spatial.search, self._candidates_of,
                                 self._trained, problem_of, self.allocator,
                                 self.spatial.objective)
            # combinations the search counted (and priced) now are not the DP's time
            t0 += self._charge_options(timings, counted)
            if self._locked is not None:  # the combination a re-rank chose
                row = next(r for r in joint.table if r['ratios'] == self._locked)
                if row['objective'] is None:
                    raise BudgetBelowFloor(f'no weight allocation fits at {self._locked}')
                joint = JointChoice.of_row(row, space, cand.masks_of(row['choice']),
                                           joint.table, joint.converged)
            chosen = id(joint.option)
            alloc_cm, costs, masks, choice = space.cost(joint.option), costs_of[chosen], \
                joint.masks, joint.choice
        else:
            joint, alloc_cm = None, cm
            costs = {n: cm.curve_costs(n, cand.orders[n], cand.counts[n], cand.kept[n])
                     for n in layers}
            timings['candidate_costs'] = time.perf_counter() - t0
            t0 = time.perf_counter()
            masks, choice = self.allocator.allocate(self._problem(cand, cm, costs, budget))
        timings['dp'] = time.perf_counter() - t0
        for it, k in zip(cand.items, choice):
            for n in it:
                curves[n] = dict(
                    ratios=(cand.counts[n].double() / layers[n].weight.numel()).tolist(),
                    distortion=cand.dist[n].tolist(), macs=costs[n].tolist(), chosen=int(k),
                    chosen_distortion=float(cand.dist[n][k]))
        return masks, alloc_cm, joint

    def _charge_options(self, timings: Dict[str, float], spent: Dict[str, float]) -> float:
        """Book the spatial combinations counted and priced since ``spent`` (a copy of
        ``SpatialOptions.seconds``) to their timings; returns those seconds."""
        new = {k: v - spent[k] for k, v in self._space.seconds.items()}
        timings['spatial_options'] += new['count']
        if 'cost_model' in timings:
            timings['cost_model'] += new['price']
        return new['count'] + new['price']

    def _reachable(self, cm, sparsest: Dict[str, Tensor]) -> float:
        """The least cost of the sparsest masks over the combinations counted so far (the
        model's own cost model without spatial sites)."""
        if not self._sites:
            return cm.total(sparsest)
        return min(self._space.cost(o).total(sparsest) for o in self._space.options.values())

    # ------------------------------------------------------------------------------
    def granularity_of(self, name: str) -> Granularity:
        """The granularity of a layer: the first pattern of ``granularity`` it matches."""
        for pat, gran in self.granularity.items():
            if fnmatch.fnmatchcase(name, pat):
                return gran
        return WeightGranularity()

    def _sparsest(self, model, layers, keep_dense) -> Dict[str, Tensor]:
        """Masks of the lowest cost any allocation reaches: every pruned layer at its lowest
        allowed density (channel layers in whole channels, their norms and consumers' input
        slices freed with them, as the allocation's own masks are)."""
        masks = {}
        channel = [n for n in self._channel_layers(layers) if n not in keep_dense]
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

    def _channel_layers(self, names) -> List[str]:
        return [n for n in names if isinstance(self.granularity_of(n), ChannelGranularity)]

    def _items(self, names: List[str], groups: List[WidthGroup]) -> List[List[str]]:
        """The DP's items in layer order: channel-granular convs of one width group
        together (all of them must be selected and channel-granular), every other layer
        alone."""
        channel = self._channel_layers(names)
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

    def _candidates(self, model, layers, grads, batches, ref, outputs, keep_dense,
                    timings) -> '_Candidates':
        """The estimator's curves, each layer's candidates and which of them the constraints
        allow, and the DP items (computed once per prune)."""
        if self._cand is not None and self._cand.layers is layers:
            return self._cand
        t0 = time.perf_counter()
        channel = self._channel_layers(list(layers))
        groups = find_channel_graph(model).groups(model) if channel else []
        scores = {n: taylor_scores(m.weight, grads[n]) for n, m in layers.items()}
        shared = self._same_channel_scores(layers, scores, groups)
        orders, counts = {}, {}
        for n, m in layers.items():
            orders[n], counts[n] = self.granularity_of(n).order_and_counts(
                m, scores[n], self.num_ratios, group_score=shared.get(n))
        dist = self.estimator_piece.curves(CurveInputs(
            layers, grads, orders, counts, model, batches, ref, outputs, self.lambdas,
            self.progress and world()[0] == 0))
        timings['curves'] = time.perf_counter() - t0
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
        self._cand = _Candidates(layers, orders, counts, dist, allowed, items, masks_of,
                                 bool(groups), kept)
        return self._cand

    def _problem(self, cand: '_Candidates', cm, costs: Dict[str, Tensor],
                 budget: float) -> WeightProblem:
        """The DP's problem under the cost model ``cm`` (candidate costs ``costs``)."""
        items = cand.items
        return WeightProblem(
            cand.layers, cm.total, cm.floor, budget, items,
            [sum(costs[n] for n in it).tolist() for it in items],
            [sum(cand.dist[n] for n in it).tolist() for it in items],
            [torch.stack([cand.allowed[n] for n in it]).all(0).tolist() for it in items],
            cand.masks_of, exact_differs=cand.exact_differs, num_buckets=self.num_buckets)


@dataclass
class _Candidates:
    """Per layer: prune order, candidate counts, distortion curve, allowed candidates; the DP
    items and the masks of a choice (one per item)."""
    layers: Dict[str, nn.Module]
    orders: Dict[str, Tensor]
    counts: Dict[str, Tensor]
    dist: Dict[str, Tensor]
    allowed: Dict[str, Tensor]
    items: List[List[str]]
    masks_of: Callable[[List[int]], Dict[str, Tensor]]
    exact_differs: bool
    kept: Dict[str, Tensor]  # kept_per_offset of each layer's candidates


def _type_name(piece, registry) -> str:
    """The registry name of a piece given by name, config or instance (for the report)."""
    if isinstance(piece, str):
        return piece
    if isinstance(piece, dict):
        return str(piece['type'])
    return next((k for k, v in registry.module_dict.items() if v is type(piece)),
                type(piece).__name__)
