"""DM3D post-training weight pruning (Alg. 2) and the baselines, behind one registry entry.

    pruning = dict(type='DM3DPruner', flops_target=0.5, method='dm3d', estimator='fisher',
                   num_ratios=32, parts=['middle_encoder', 'backbone', 'neck'])

``prune(model, batches)`` counts the joint FLOPs on the calibration frames (post spatial
pruning, whatever spatial modules the model has), selects the layers, computes per-layer
distortion curves, allocates sparsity with the DP against the FLOPs cost model, applies the
masks, and returns a PruneResult with everything the report needs.
"""
from typing import Dict, Optional, Sequence, Union

from mmengine.logging import print_log
from torch import nn

from ..cost import count_flops
from ..cost.budget_cost import build_cost
from ..cost.cost_model import CostModel
from ..errors import BudgetBelowFloor, UserError
from ..joint.driver import JointDriver
from ..joint.search import SpatialSpec, shared_stages
from ..joint.sites import keep_ratios, set_keep_ratios
from ..registry import ALLOCATORS, ESTIMATORS, PRUNERS, build_piece
from ..spatial.stage_memo import StageMemo
from ..structured.channel_graph import find_channel_graph
from ..structured.granularity import Granularity, WeightGranularity, build_granularity
from ..structured.slim import kept_channels, slim_model
from ..weight.allocators import Allocator, WeightProblem
from ..weight.calibration import calibration_pass, counted_distortion
from ..weight.discovery import find_prunable_layers, settle_selection
from ..weight.distributed import reduce_counter, shard, world
from ..weight.estimators import CurveInputs, DistortionEstimator
from ..weight.head_outputs import DEFAULT_LAMBDAS, build_head_outputs
from ..weight.masks import MaskSet
from .arguments import check_pruner_arguments
from .candidates import CandidateBuilder
from .prune_call import PruneCall
from .recount import Allocation, RecountLoop
from .result import PruneResult, layer_results
from .stopwatch import Lap

#: names of the registered allocators (``method=``) and estimators (``estimator=``)
METHODS = tuple(ALLOCATORS.module_dict)
ESTIMATOR_NAMES = tuple(ESTIMATORS.module_dict)


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
        cost (str | dict): what the budget counts (``BUDGET_COSTS``): ``'flops'``, the exact
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
            finders=('ada3d', 'spss'))`` (see :class:`~dm3d_mm.joint.search.SpatialSpec`;
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
        check_pruner_arguments(flops_target, min_density, max_density, kappa, box_weighting,
                               budget_of, lambdas, reference, num_ratios=num_ratios,
                               num_projections=num_projections, num_buckets=num_buckets,
                               recount_attempts=recount_attempts, seed=seed)
        self.allocator: Allocator = build_piece(method, ALLOCATORS, 'method', (Allocator, ))
        self.method = _type_name(method, ALLOCATORS)
        if isinstance(estimator, str) and kappa and estimator in ('fisher', 'taylor2'):
            estimator = dict(type=estimator, kappa=kappa)
        elif kappa:
            raise UserError(f'kappa damps the Fisher of a fisher or taylor2 estimator given by '
                             f'name; estimator {estimator!r} takes its own arguments')
        self.estimator_piece: DistortionEstimator = build_piece(
            estimator, ESTIMATORS, 'estimator', (DistortionEstimator, ))
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
        self.spatial = None if spatial is None else SpatialSpec(**spatial)
        if self.spatial is not None and budget_of != 'model':
            raise UserError("spatial= (the joint allocation) needs budget_of='model'")
        self.reference = None if reference is None else dict(reference)
        if self.reference is not None and (budget_of != 'model' or self.cost.unit != 'MACs'):
            raise UserError("pruning config: a reference is a count of joint FLOPs: it needs "
                            "cost='flops' and budget_of='model'")
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
        self.num_projections = num_projections
        self.min_density, self.max_density = min_density, max_density
        self.keep_dense = list(keep_dense)
        self.num_buckets = num_buckets
        self.seed = seed
        self.progress = progress
        self.calib = dict(calib or {})
        self.builder = CandidateBuilder(self.granularity, num_ratios, min_density,
                                        max_density, self.estimator_piece)
        #: the state of the last ``prune`` (its candidates, counted spatial combinations)
        self.last_call: Optional[PruneCall] = None

    # ------------------------------------------------------------------------------
    def outputs(self, model: nn.Module):
        """The head-output extractor this pruner measures distortion with on ``model``."""
        return build_head_outputs(model, self.head_outputs, self.box_weighting)

    def cost_model(self, model: nn.Module, batches: Sequence[dict], names) -> CostModel:
        """The joint FLOPs cost model of ``model`` as it is now on ``batches`` (all ranks)."""
        counter = count_flops(model, batches, self.outputs(model))
        reduce_counter(counter)
        return CostModel(counter, names)

    def granularity_of(self, name: str) -> Granularity:
        """The granularity of a layer: the first pattern of ``granularity`` it matches."""
        return self.builder.granularity_of(name)

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
        batches, frame_ids = shard(batches)  # this rank's share (all of them alone)
        was_training = model.training
        model.eval()
        call = self.last_call = PruneCall(frame_ids)
        sites = self.spatial.sites_of(model) if self.spatial is not None else []
        trained = keep_ratios(sites)
        if sites:
            call.joint = JointDriver(self.spatial, sites, trained)
        try:
            return self._prune(call, model, batches)
        except BaseException:
            set_keep_ratios(sites, trained)
            raise
        finally:
            model.train(was_training)

    def _prune(self, call: PruneCall, model, batches) -> PruneResult:
        watch, joint_part = call.watch, call.joint
        progress = self.progress and world()[0] == 0
        outputs = self.outputs(model)
        candidates = find_prunable_layers(model, **self.select)
        for pat in self.keep_dense:
            if pat not in candidates:
                raise UserError(f'keep_dense names {pat!r}, which is not a selected layer')
        lap = Lap()
        # the encoder stages of the model as trained are kept for the combinations' forwards
        memo = StageMemo() if call.sites else None
        with watch.time('calibration_pass'), shared_stages(call.sites, memo):
            calib = calibration_pass(model, candidates, batches, outputs, self.lambdas,
                                     self._gradient_mode(), self.num_projections, self.seed,
                                     progress, frame_ids=call.frame_ids)
        layers, left_out = settle_selection(candidates, calib.counter.layers,
                                            calib.reached, **self.select)
        for reason, names in left_out.items():
            print_log(f'DM3DPruner: left out {len(names)} layer(s) that {reason}: '
                      f'{", ".join(names)}', logger='current')
        lap, counting = Lap(), 0.0
        if joint_part is not None:  # combinations of keep ratios, counted when asked for
            cm = joint_part.count_options(model, batches, calib, list(layers), outputs,
                                          self.lambdas, self.cost, progress, memo)
            flops = cm.flops
            counting = joint_part.space.seconds['count']
            watch.add('spatial_options', counting)
        else:
            flops = CostModel(calib.counter, list(layers))
            cm = self.cost.build(model, batches, flops)  # what the budget counts
        if cm is not flops:  # the cost model's time: tables and wholes, not the counting
            watch.add('cost_model', lap.seconds - counting)
        keep_dense = [n for n in self.keep_dense if n in layers]
        # dense is every selected weight kept, whatever zeros the weights hold now (re-pruning
        # a pruned checkpoint measures against dense, not against the pruned model)
        own = flops.dense_total if cm is flops else cm.total()
        # what the target is a fraction of: the given reference (a dense detector counted
        # on the same frames), else the model itself (spatial sites at their largest ratios)
        before = own if self.reference is None else float(self.reference['gmacs']) * 1e9
        reference = self._reference_name(joint_part)
        # 'parts': the selected layers go to flops_target of their own joint FLOPs (Tab. 4:
        # a part alone often cannot reach a fraction of the whole model)
        budget = self.flops_target * before if self.budget_of == 'model' else \
            cm.floor + self.flops_target * (before - cm.floor)
        sparsest = self.builder.sparsest(model, layers, keep_dense)

        def reachable():
            return cm.total(sparsest) if joint_part is None else \
                joint_part.reachable(sparsest)

        floor = reachable()
        if budget < floor - 1e-6 * before and joint_part is not None:
            # the smallest ratios everywhere give the floor; counted only where the budget
            # is below what the others reach
            spent = dict(joint_part.space.seconds)
            joint_part.count_smallest()
            joint_part.charge(watch, spent)
            floor = reachable()
        if budget < floor - 1e-6 * before:
            raise BudgetBelowFloor(
                f'flops_target={self.flops_target} asks for {cm.describe(budget)} per frame '
                f'but the floor is {cm.describe(floor)} ({floor / before:.3f} of '
                f'{reference}): layers that are not pruned cost {cm.describe(cm.floor)}. '
                'Raise the target or prune more parts.')
        # every parameter and buffer as before pruning (masks also zero norms and consumers'
        # input slices): a repeated allocation starts from them
        state = [(t, t.detach().clone()) for t in (*model.parameters(), *model.buffers())]

        def restore():
            for t, saved in state:
                t.data.copy_(saved)

        def allocate(target: float) -> Allocation:
            masks, alloc_cm, joint, curves = self._allocate(
                call, model, layers, calib, batches, outputs, cm, target, keep_dense)
            predicted = alloc_cm.total(masks)
            if predicted > target * (1 + 1e-9):
                raise RuntimeError(f'{self.method} allocated {predicted:.6g} {cm.unit}, '
                                   f'over the budget {target:.6g} (a bug in the allocator)')
            # the joint FLOPs predicted (a latency cost model holds its FLOPs model)
            flops_predicted = (alloc_cm if joint is not None else flops).flops.total(masks)
            return Allocation(masks, predicted, flops_predicted, joint, curves)

        def recount(alloc: Allocation):
            if alloc.joint is not None:  # the chosen keep ratios go in force with the masks
                set_keep_ratios(call.sites, alloc.joint.ratios)
            MaskSet(model, alloc.masks).apply()
            # the pruned model counted afresh on the same frames (a spatial module may keep
            # other sites once the weights upstream of it are pruned), its distortion measured
            with watch.time('recount'):
                counter, measured = counted_distortion(model, batches, calib.reference,
                                                       outputs, self.lambdas)
            counted = CostModel(counter, [n for n in layers if n in counter.layers])
            # what the budget counts, measured on the pruned model as it will run
            lap = Lap()
            total = self.cost.measure(lambda: self._as_it_runs(model, layers), batches,
                                      counted, alloc.masks)
            if cm is not flops:
                watch.add('measure', lap.seconds)
            return total, counted, measured

        loop = RecountLoop(allocate, recount, restore, budget, before, floor, own,
                           self.recount_attempts, cm is not flops, self.allow_over_budget,
                           cm.describe, reference, self.flops_target)
        best, last = loop.fit(budget)
        if joint_part is not None and self.spatial.rerank is not None and \
                best.joint is not None:
            # the best few combinations at the target that fitted, probed from the weights as
            # trained; another choice is allocated again there, its ratios kept
            restore()
            with watch.time('rerank'):
                moved = joint_part.rerank(best.joint, call.candidates.masks_of, model,
                                          batches, calib.reference, outputs, self.lambdas)
            last = None  # the chosen allocation goes in force again below
            if moved:
                best, last = loop.fit(best.target)
        if best.index != last:  # an earlier allocation fitted the budget better
            restore()
            MaskSet(model, best.masks).apply()
            if best.joint is not None:
                set_keep_ratios(call.sites, best.joint.ratios)
        watch.seconds['total'] = sum(watch.seconds.values())
        cost = dict(unit=cm.unit, before=before, after=best.total, budget=budget,
                    reference=reference, allocations=len(loop.targets))
        masks, counted = best.masks, best.counted
        if self.reference is None:  # the joint FLOPs of the model as given
            before = flops.dense_total
        results = layer_results(layers, masks, flops, counted, best.curves)
        # the report counts joint FLOPs whatever the budget counted
        return PruneResult(self.method, self.estimator if self.allocator.uses_curves else None,
                           self.flops_target, before, counted.total(masks), flops.floor,
                           results, masks, dict(watch.seconds), dict(best.curves),
                           best.measured, budget_of=self.budget_of, left_out=left_out,
                           head_outputs=repr(outputs), cost=cost,
                           macs_after_predicted=best.flops_predicted,
                           spatial=joint_part.info(best.joint) if joint_part else {},
                           fits=loop.fits(best.total))

    def _reference_name(self, joint_part: Optional[JointDriver]) -> str:
        """What ``flops_target`` is a fraction of, in words (the report's first line)."""
        if self.reference is not None:
            return str(self.reference['name'])
        what = {'model': 'the model', 'parts': "the selected layers' own cost in the model"}
        if joint_part is None:
            return what[self.budget_of] + ' with every weight kept'
        return joint_part.reference_name(what[self.budget_of])

    def _as_it_runs(self, model: nn.Module, layers) -> nn.Module:
        """The pruned model as it will run: a slim copy where any of the pruned ``layers``
        has channel granularity (what ``tools/slim.py`` exports), the masked model itself
        otherwise."""
        if not self.builder.channel_layers(list(layers)):
            return model
        groups = find_channel_graph(model).groups(model)
        return slim_model(model, groups, kept_channels(model, groups))

    def _allocate(self, call: PruneCall, model, layers, calib, batches, outputs, cm,
                  budget, keep_dense):
        """(masks of the selected layers within ``budget``, the cost model they were
        allocated under, the joint choice or None, the chosen curves)."""
        watch = call.watch
        if not self.allocator.uses_curves:
            with watch.time('allocation'):
                masks, _ = self.allocator.allocate(WeightProblem(layers, cm.total, cm.floor,
                                                                 budget))
            return masks, cm, None, {}
        if call.candidates is None:  # the curves and candidates, once per prune
            grads = {n: calib.grads[n] for n in layers}
            with watch.time('curves'):
                call.candidates = self.builder.build(
                    model, layers, grads, keep_dense,
                    lambda orders, counts: CurveInputs(
                        layers, grads, orders, counts, model, batches, calib.reference,
                        outputs, self.lambdas, self.progress and world()[0] == 0))
        cand = call.candidates
        if call.joint is not None:
            with watch.time('dp'):
                joint, alloc_cm, costs = call.joint.allocate(
                    cand, budget, self.allocator, self.num_buckets, watch)
            masks, choice = joint.masks, joint.choice
        else:
            joint, alloc_cm = None, cm
            with watch.time('candidate_costs'):
                costs = cand.costs(cm)
            with watch.time('dp'):
                masks, choice = self.allocator.allocate(
                    cand.problem(cm, costs, budget, self.num_buckets))
        return masks, alloc_cm, joint, cand.curves_of(choice, costs)


def _type_name(piece, registry) -> str:
    """The registry name of a piece given by name, config or instance (for the report)."""
    if isinstance(piece, str):
        return piece
    if isinstance(piece, dict):
        return str(piece['type'])
    return next((k for k, v in registry.module_dict.items() if v is type(piece)),
                type(piece).__name__)
