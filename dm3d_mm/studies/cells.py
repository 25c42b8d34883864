"""Ablation cells and the DM3D paper's studies as lists of cells.

A cell is one model variant of a demo detector: the dense checkpoint, its "dense-ft" control
(the dense model fine-tuned on exactly the weight cells' schedule), a spatially pruned model
(SPS-Conv or Ada3D, trained the way their methods train), weight pruning of the dense model
(DM3D or a baseline at a fraction of the joint FLOPs), or weight pruning on top of a spatial
model (the fraction is of the spatial model's own joint FLOPs).
"""
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import UserError
from ..pruning.pruner import ESTIMATOR_NAMES, METHODS

_DEMO = 'dm3d_mm::demo/'
_DISTILL = 'dm3d_mm::distill/'


@dataclass(frozen=True)
class PartSet:
    """The layers a weight cell prunes, and what its budget is a fraction of.

    Args:
        parts (tuple[str]): detector parts (``DM3DPruner(parts=...)``).
        alone (bool): the budget is a fraction of these parts' own joint FLOPs (Tab. 4);
            otherwise of the whole detector's. Defaults to False.
        head_outputs (bool): the head's prediction convs are pruned too. Defaults to False.
        pruner (dict): further DM3DPruner arguments (e.g. box-term lambdas, which a head's
            regression convs need). Defaults to {}.
    """
    parts: Tuple[str, ...]
    alone: bool = False
    head_outputs: bool = False
    pruner: Dict = field(default_factory=dict)


@dataclass(frozen=True)
class SpatialSetup:
    """A spatially pruned demo model.

    Args:
        config (str): the config it is evaluated with.
        checkpoint (str): its trained checkpoint.
        finetune_config (str): weight pruning on top of it: the fine-tune schedule (and the
            pruning dict) of its spatial + DM3D config.
    """
    config: str
    checkpoint: str
    finetune_config: str


@dataclass(frozen=True)
class DetectorSetup:
    """A demo detector of the ablation.

    Args:
        finetune_config (str): the dense model on the weight cells' fine-tune schedule (also
            the dense-ft control's).
        checkpoint (str): the dense demo checkpoint.
        parts (dict): the part sets (:class:`PartSet`) of its weight cells (``'all'``: the
            default, first).
        pruner (dict): DM3DPruner arguments this detector needs (e.g. box-term lambdas).
        spatial (dict): its spatially pruned models, by name.
        distill_losses (tuple[dict]): the ``DISTILL_LOSSES`` of its cells recovered with
            the dense model as teacher (``recovery='kd'``).
    """
    finetune_config: str
    checkpoint: str
    parts: Dict[str, PartSet]
    pruner: Dict = field(default_factory=dict)
    spatial: Dict[str, SpatialSetup] = field(default_factory=dict)
    distill_losses: Tuple[Dict, ...] = ()


DETECTORS: Dict[str, DetectorSetup] = {
    'second': DetectorSetup(
        finetune_config=_DEMO + 'second_synth-kitti_cpu_finetune.py',
        checkpoint='checkpoints/second_synth-kitti_cpu.pth',
        parts={'all': PartSet(('middle_encoder', 'backbone', 'neck')),
               '3D': PartSet(('middle_encoder', ), alone=True),
               '2D': PartSet(('backbone', 'neck'), alone=True),
               'head': PartSet(('bbox_head', ), alone=True, head_outputs=True),
               # the anchor head's output convs too (on Ada3D they are about half of its
               # joint FLOPs: it runs on the whole BEV map); its box regression conv is
               # measured only by the box term
               'all+head': PartSet(('middle_encoder', 'backbone', 'neck', 'bbox_head'),
                                   head_outputs=True, pruner=dict(lambdas=(1.0, 1.0)))},
        spatial={
            'spss50': SpatialSetup(_DEMO + 'second_synth-kitti_cpu_spss50.py',
                                   'checkpoints/second_synth-kitti_cpu_spss50.pth',
                                   _DEMO + 'second_synth-kitti_cpu_spss50_dm3d50.py'),
            # SPS-Conv with the supervised voxel ranking, GT boxes grown by 0.3 m (the SPSS
            # recipe that keeps the dense accuracy here)
            'spss50_fg-margin': SpatialSetup(
                _DEMO + 'second_synth-kitti_cpu_spss50_fg-margin.py',
                'checkpoints/second_synth-kitti_cpu_spss50_fg-margin.pth',
                _DEMO + 'second_synth-kitti_cpu_spss50_fg-margin_dm3d50.py'),
            'ada3d': SpatialSetup(_DEMO + 'second_synth-kitti_cpu_ada3d.py',
                                  'checkpoints/second_synth-kitti_cpu_ada3d.pth',
                                  _DEMO + 'second_synth-kitti_cpu_ada3d_dm3d50.py')},
        distill_losses=(dict(type='anchor_head_response'),
                        dict(type='bev_feature', region='active'))),
    # CenterHead holds about half of the joint FLOPs, most in its regression branches,
    # which only box terms (lambda_b > 0) measure
    'centerpoint': DetectorSetup(
        finetune_config=_DEMO + 'centerpoint_synth-kitti_cpu_finetune.py',
        checkpoint='checkpoints/centerpoint_synth-kitti_cpu.pth',
        parts={'all': PartSet(('pts_middle_encoder', 'pts_backbone', 'pts_neck',
                               'pts_bbox_head')),
               '3D': PartSet(('pts_middle_encoder', ), alone=True),
               '2D': PartSet(('pts_backbone', 'pts_neck'), alone=True),
               'head': PartSet(('pts_bbox_head', ), alone=True, head_outputs=True)},
        pruner=dict(lambdas=(1.0, 1.0)),
        spatial={
            'spss50_fg-margin': SpatialSetup(
                _DEMO + 'centerpoint_synth-kitti_cpu_spss50_fg-margin.py',
                'checkpoints/centerpoint_synth-kitti_cpu_spss50_fg-margin.pth',
                _DEMO + 'centerpoint_synth-kitti_cpu_spss50_fg-margin_dm3d50.py'),
            'ada3d': SpatialSetup(_DEMO + 'centerpoint_synth-kitti_cpu_ada3d.py',
                                  'checkpoints/centerpoint_synth-kitti_cpu_ada3d.pth',
                                  _DEMO + 'centerpoint_synth-kitti_cpu_ada3d_dm3d50.py'),
            # the same checkpoint with the neck and the head's shared conv computing only
            # what the dropping leaves: the same outputs, fewer FLOPs counted and run
            'ada3d_sparse-head': SpatialSetup(
                _DEMO + 'centerpoint_synth-kitti_cpu_ada3d_sparse-head.py',
                'checkpoints/centerpoint_synth-kitti_cpu_ada3d.pth',
                _DEMO + 'centerpoint_synth-kitti_cpu_ada3d_sparse-head_dm3d50.py'),
            # the same model and head trained with a dense teacher in Ada3D's steps 1 and 3
            # (configs/distill/centerpoint_synth-kitti_cpu_ada3d-kd*.py): the demo's
            'ada3d-kd_sparse-head': SpatialSetup(
                _DEMO + 'centerpoint_synth-kitti_cpu_ada3d_sparse-head.py',
                'checkpoints/centerpoint_synth-kitti_cpu_ada3d-kd.pth',
                _DEMO + 'centerpoint_synth-kitti_cpu_ada3d_sparse-head_dm3d50.py'),
            # Ada3D from the dense weights with growing 2D blocks, its joint step distilled
            # from a dense teacher (configs/distill/centerpoint_..._ada3d-grow_kd.py)
            'ada3d-grow_sparse-head': SpatialSetup(
                _DISTILL + 'centerpoint_synth-kitti_cpu_ada3d-grow_sparse-head.py',
                'checkpoints/centerpoint_synth-kitti_cpu_ada3d-grow_kd.pth',
                _DISTILL + 'centerpoint_synth-kitti_cpu_ada3d-grow_sparse-head_dm3d50.py')},
        # the heatmap term over the teacher's peaks (over its whole heatmap mass it is
        # ~0.04, too small to train), the box term at the GT box loss' weight (0.25)
        distill_losses=(dict(type='center_head_response', loss_weight=2.0, box_weight=0.25,
                             cls_norm='peaks'),
                        dict(type='bev_feature', region='active', loss_weight=0.5))),
}

#: how a weight cell recovers after pruning: plain fine-tuning with the masks kept, or the
#: same with the dense model as a frozen teacher (``DistillationHook``)
RECOVERIES = ('finetune', 'kd')


@dataclass(frozen=True)
class Cell:
    """One variant of a demo detector (see the module docstring).

    Args:
        detector (str): a key of ``DETECTORS``. Defaults to 'second'.
        spatial (str, optional): a spatial model of that detector. Defaults to None.
        budget (float, optional): weight pruning to this fraction of the joint FLOPs (of the
            spatial model when ``spatial`` is set). Defaults to None.
        method (str): 'dm3d' or a baseline ('uniform', 'lamp', ...). Defaults to 'dm3d'.
        parts (str): a part set of the detector. Defaults to 'all'.
        estimator (str): DM3D's distortion curves. Defaults to 'fisher'.
        min_density (float): DM3D's floor on every layer's weight density (the DP may not
            remove a whole layer below it; the cell's name gets ``-floor`` and the density
            in %). Defaults to 0.
        control (bool): a control fine-tuned on exactly the weight cells' schedule without
            weight pruning: of the dense model ("dense-ft"), or of ``spatial`` (the fair
            reference of DM3D on top of it, Tab. 6). Defaults to False.
        joint (bool): the joint allocation on ``spatial``: its keep ratios chosen with the
            weight densities (``DM3DPruner(spatial=...)``); ``budget`` is then a fraction of
            the dense detector's joint FLOPs. Defaults to False.
        recovery (str): how a fine-tuned cell recovers (:data:`RECOVERIES`): ``'finetune'``
            or ``'kd'`` (the same schedule with the dense model as a frozen teacher; the
            cell's name gets ``-kd``). Defaults to 'finetune'.
    """
    detector: str = 'second'
    spatial: Optional[str] = None
    budget: Optional[float] = None
    method: str = 'dm3d'
    parts: str = 'all'
    estimator: str = 'fisher'
    min_density: float = 0.0
    control: bool = False
    joint: bool = False
    recovery: str = 'finetune'

    def __post_init__(self):
        setup = DETECTORS.get(self.detector)
        if setup is None:
            raise UserError(f'unknown detector {self.detector!r}; known: {sorted(DETECTORS)}')
        if self.spatial is not None and self.spatial not in setup.spatial:
            raise UserError(f'{self.detector} has no spatial model {self.spatial!r}; '
                             f'known: {sorted(setup.spatial)}')
        if self.budget is not None and not 0 < self.budget <= 1:
            raise UserError(f'budget is a fraction of the joint FLOPs in (0, 1], got '
                             f'{self.budget}')
        if self.method not in METHODS:
            raise UserError(f'unknown method {self.method!r}; known: {METHODS}')
        if self.estimator not in ESTIMATOR_NAMES:
            raise UserError(f'unknown estimator {self.estimator!r}; known: {ESTIMATOR_NAMES}')
        if self.parts not in setup.parts:
            raise UserError(f'{self.detector} has no part set {self.parts!r}; known: '
                             f'{sorted(setup.parts)}')
        if self.joint and (self.spatial is None or self.budget is None
                           or self.method != 'dm3d'):
            raise UserError('a joint cell needs a spatial model, a budget and method dm3d')
        if self.control and self.budget is not None:
            raise UserError('a control has no weight pruning')
        if not 0 <= self.min_density < 1:
            raise UserError(f'min_density is a weight density in [0, 1), got '
                             f'{self.min_density}')
        if self.recovery not in RECOVERIES:
            raise UserError(f'unknown recovery {self.recovery!r}; known: {RECOVERIES}')
        if self.recovery == 'kd' and (not self.finetuned or not setup.distill_losses):
            raise UserError('recovery kd distils a fine-tuned cell (a weight cell or a '
                            'control) of a detector with distillation losses')
        if self.min_density and (self.method != 'dm3d' or self.budget is None):
            raise UserError('min_density is a floor of DM3D\'s allocation: it needs '
                             f"method='dm3d' and a budget (cell {self.name})")

    @property
    def name(self) -> str:
        kd = '-kd' if self.recovery == 'kd' else ''
        if self.control:
            return f"{self.detector}:{self.spatial or 'dense'}-ft{kd}"
        bits = [self.spatial] if self.spatial else []
        if self.budget is not None:
            bit = f"{'joint' if self.joint else self.method}{round(self.budget * 100, 1):g}"
            if self.parts != 'all':
                bit += f'-{self.parts}'
            if self.method == 'dm3d' and self.estimator != 'fisher':
                bit += f'-{self.estimator}'
            if self.min_density:
                bit += f'-floor{round(self.min_density * 100, 1):g}'
            bits.append(bit + kd)
        return f"{self.detector}:{'+'.join(bits) or 'dense'}"

    @property
    def kind(self) -> str:
        if self.control:
            return 'spatial-ft' if self.spatial else 'dense-ft'
        if self.joint:
            return 'joint'
        return {(False, False): 'dense', (True, False): 'spatial', (False, True): 'weight',
                (True, True): 'spatial + weight'}[(self.spatial is not None,
                                                   self.budget is not None)]

    @property
    def finetuned(self) -> bool:
        """Fine-tuned by the ablation (weight cells and the controls); dense and spatial
        models are evaluated as trained."""
        return self.control or self.budget is not None


Run = Callable[[Cell], Dict]


def _spatial(detector: str, spatial: Optional[Sequence[str]]) -> List[str]:
    """The spatial models a study includes (None: all of the detector's)."""
    known = list(DETECTORS[detector].spatial)
    if spatial is None:
        return known
    unknown = [s for s in spatial if s not in known]
    if unknown:
        raise UserError(f'{detector} has no spatial model {unknown}; known: {known}')
    return list(spatial)


def study_fig1(run: Run, detector: str, budgets: Sequence[float],
               methods: Sequence[str] = ('dm3d', 'uniform', 'lamp'),
               spatial: Optional[Sequence[str]] = None, parts: str = 'all',
               min_density: float = 0.0) -> List[Cell]:
    """Fig. 1: AP against joint FLOPs. Dense, dense-ft, each weight method at each budget,
    each spatial model, and DM3D on each spatial model at the first two budgets (weight
    cells pruning the part set ``parts``; DM3D's cells with the density floor
    ``min_density``)."""
    spatial = _spatial(detector, spatial)
    cells = [Cell(detector), Cell(detector, control=True)]
    cells += [Cell(detector, budget=b, method=m, parts=parts,
                   min_density=min_density if m == 'dm3d' else 0.0)
              for m in methods for b in budgets]
    cells += [Cell(detector, spatial=s) for s in spatial]
    cells += [Cell(detector, spatial=s, budget=b, parts=parts, min_density=min_density)
              for s in spatial for b in budgets[:2]]
    for cell in cells:
        run(cell)
    return cells


def study_tab12(run: Run, detector: str, budgets: Sequence[float] = (),
                spatial: Optional[Sequence[str]] = None) -> List[Cell]:
    """Tab. 1/2: DM3D against Ada3D at Ada3D's measured joint FLOPs (plus dense, dense-ft)."""
    if 'ada3d' not in DETECTORS[detector].spatial:
        raise UserError(f'{detector} has no Ada3D model to compare with')
    cells = [Cell(detector), Cell(detector, control=True), Cell(detector, spatial='ada3d')]
    rows = [run(c) for c in cells]
    if rows[-1] is None:  # no Ada3D model (its checkpoint is missing): nothing to match
        return cells
    matched = Cell(detector, budget=round(rows[-1]['flops_ratio'], 3))
    run(matched)
    return cells + [matched]


def study_tab6(run: Run, detector: str, budgets: Sequence[float],
               spatial: Optional[Sequence[str]] = None, parts: str = 'all',
               min_density: float = 0.0) -> List[Cell]:
    """Tab. 6: DM3D on top of each spatial model at the first two budgets (pruning the part
    set ``parts``, density floor ``min_density``), against that spatial model fine-tuned on
    the same schedule (its fair control)."""
    spatial = _spatial(detector, spatial)
    if not spatial:
        raise UserError(f'{detector} has no spatial model to prune on top of')
    cells = [Cell(detector, control=True)]
    for s in spatial:
        cells += [Cell(detector, spatial=s), Cell(detector, spatial=s, control=True)]
        cells += [Cell(detector, spatial=s, budget=b, parts=parts, min_density=min_density)
                  for b in budgets[:2]]
    for cell in cells:
        run(cell)
    return cells


def study_tab4(run: Run, detector: str, budgets: Sequence[float], **_) -> List[Cell]:
    """Tab. 4: weight pruning of each part alone (budget of the part's own FLOPs)."""
    cells = [Cell(detector, budget=budgets[0], parts=p)
             for p, ps in DETECTORS[detector].parts.items() if ps.alone]
    for cell in cells:
        run(cell)
    return cells


def study_tab5(run: Run, detector: str, budgets: Sequence[float], **_) -> List[Cell]:
    """Tab. 5: Hessian-based (fisher) against actual distortion curves."""
    cells = [Cell(detector, budget=budgets[0]),
             Cell(detector, budget=budgets[0], estimator='actual')]
    for cell in cells:
        run(cell)
    return cells


JOINT_SERIES = ('controls', 'dm3d', 'joint', 'hand')


def study_joint(run: Run, detector: str, budgets: Sequence[float],
                spatial: Optional[Sequence[str]] = None, parts: str = 'all',
                min_density: float = 0.0,
                series: Sequence[str] = JOINT_SERIES,
                recoveries: Sequence[str] = ('finetune', )) -> List[Cell]:
    """The joint allocation's frontier: at each budget (a fraction of the dense detector's
    joint FLOPs), the joint allocation on each spatial model (default: Ada3D), the spatial
    model at its trained keep ratios + DM3D to the same FLOPs (hand-set), and DM3D alone;
    with dense, dense-ft, the spatial model and its fine-tuned control. A hand-set cell
    whose spatial model alone is already within the budget is not run (the spatial model is
    that point).

    Args:
        series (Sequence[str]): what to run, any of ``'controls'`` (dense-ft and the
            spatial model fine-tuned), ``'dm3d'`` (DM3D alone), ``'joint'``, ``'hand'``
            (hand-set spatial + DM3D) at each budget. Defaults to all; a second seed may
            need only the series that are close. The dense and spatial models are
            evaluated regardless (no fine-tune; the hand-set cells need the spatial
            model's FLOPs).
        recoveries (Sequence[str]): each weight cell and the spatial model's control once
            per recovery of :data:`RECOVERIES` (``'kd'``: the same fine-tune with the dense
            model as a frozen teacher); dense-ft, the fair control, is fine-tuned plainly.
            Defaults to ('finetune', ).
    """
    unknown = sorted(set(series) - set(JOINT_SERIES))
    if unknown:
        raise UserError(f'unknown joint series {unknown}; known: {list(JOINT_SERIES)}')
    known = DETECTORS[detector].spatial
    spatial = _spatial(detector, spatial if spatial is not None else
                       [s for s in ('ada3d', ) if s in known])
    controls = 'controls' in series
    cells = [Cell(detector)] + ([Cell(detector, control=True)] if controls else [])
    for c in cells:
        run(c)
    for s in spatial:
        alone = run(Cell(detector, spatial=s))
        cells.append(Cell(detector, spatial=s))
        if controls:  # the spatial model fine-tuned, once per recovery
            for r in recoveries:
                control = Cell(detector, spatial=s, control=True, recovery=r)
                run(control)
                cells.append(control)
        for b in budgets:
            todo = [Cell(detector, budget=b, parts=parts, min_density=min_density)] \
                if 'dm3d' in series else []
            if 'joint' in series:
                todo.append(Cell(detector, spatial=s, budget=b, parts=parts, joint=True,
                                 min_density=min_density))
            if 'hand' in series and alone is not None and b < alone['flops_ratio']:
                todo.append(Cell(detector, spatial=s, budget=round(b / alone['flops_ratio'], 3),
                                 parts=parts, min_density=min_density))
            todo = [replace(c, recovery=r) for c in todo for r in recoveries]
            for cell in todo:
                run(cell)
            cells += todo
    return cells


STUDIES = {'fig1': study_fig1, 'tab12': study_tab12, 'tab6': study_tab6,
           'tab4': study_tab4, 'tab5': study_tab5, 'joint': study_joint}
