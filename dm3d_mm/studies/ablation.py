"""Spatial vs weight sparsity ablation on the demo benchmark (DM3D paper Fig. 1, 4, Tab. 1-6).

``Ablation.run(cell)`` builds one variant (see :mod:`.cells`): a weight cell prunes the
dense (or spatial) demo checkpoint, fine-tunes it with the masks kept (DM3DPruningHook, BN
statistics frozen), evaluates on val and counts its joint FLOPs against the dense model on
the same frames; the dense-ft control is fine-tuned on the same schedule with frozen BN
statistics and no pruning. Results, each cell's seconds and DM3D's layer-wise allocation go
to one JSON file, written after every cell, so a re-run skips the finished cells.
"""
import os
import os.path as osp
import time
from dataclasses import asdict
from typing import Dict, Optional, Tuple

from ..apis.config_utils import load_config
from ..apis.demo import config_making, evaluate_checkpoint
from ..apis.finetune import finetune_and_test
from ..apis.flops import joint_gmacs
from ..apis.kitti_summary import moderate_map, summarize_kitti_metrics
from ..apis.model import build_detector
from ..apis.prune import build_pruner, calibration_batches, save_result
from ..errors import BudgetBelowFloor, MissingFile, MissingKey, UserError
from .cells import DETECTORS, STUDIES, Cell
from .results_file import ResultsFile

RESULTS_FILE = 'ablation.json'  # in the work dir
# the fine-tune of a weight cell keeps its masks; its control (dense-ft, spatial-ft) only
# freezes the norm statistics, as the weight cells' hook does (see Ablation.run)
MASKED_FINETUNE_HOOK = dict(type='DM3DPruningHook', prune_on_start=False, flops_frames=0,
                            freeze_norm_stats=True)
CONTROL_FINETUNE_HOOK = dict(type='FreezeNormStatsHook')

__all__ = ['Ablation', 'Cell', 'DETECTORS', 'STUDIES', 'cell_of', 'joint_gmacs', 'joint_target']


def joint_target(model, dense_model, batches, fraction: float,
                 spatial_grid: Optional[dict] = None, measure=joint_gmacs) -> float:
    """The joint pruner's ``flops_target`` for ``fraction`` of the dense detector's joint
    FLOPs (or of what ``measure`` gives): the pruner's reference is the spatial ``model`` with
    every site at its largest keep ratio (Ada3D's 2D convs still skip empty pixels there),
    both measured on ``batches``.

    Args:
        model (nn.Module): the spatially pruned detector (its ratios are restored).
        dense_model (nn.Module): the dense detector.
        batches (Sequence[dict]): the frames both are measured on.
        fraction (float): the budget, a fraction of the dense detector's cost.
        spatial_grid (dict, optional): the pruner's ``spatial=`` section. Defaults to None.
        measure (Callable): ``measure(model, batches)``, the cost the budget counts: joint
            GMACs per frame (default) or a latency cost's ``whole_seconds``.
    """
    from ..joint.search import SpatialSpec
    from ..joint.sites import ratios_in_force
    grid = SpatialSpec(**(spatial_grid or {}))
    sites = grid.sites_of(model)
    with ratios_in_force(sites, grid.largest(sites)):
        largest = measure(model, batches)
    return fraction * measure(dense_model, batches) / largest


class Ablation:
    """Runs cells, keeps results in ``work_dir/ablation.json`` (atomic writes).

    Args:
        work_dir (str): where the JSON results and each cell's files go.
        data_root (str): the synthetic benchmark.
        epochs (int, optional): fine-tune epochs of the weight cells and of the dense-ft
            control (None: the fine-tune config's own; 0: no fine-tune). Defaults to None.
        calib_frames (int): calibration frames of the pruning. Defaults to 16.
        flops_frames (int): val frames the joint FLOPs are counted on. Defaults to 4.
        checkpoint_root (str): the directory relative checkpoint paths of ``DETECTORS``
            start from. Defaults to '.'.
        checkpoints (dict, optional): checkpoint paths that replace the demo ones, keyed
            'second', 'second:spss50', ..., and 'centerpoint:teacher' (the KD cells'
            teacher). Defaults to None.
        cfg_options (dict, optional): overrides merged into every config. Defaults to None.
        device (str, optional): 'cuda' or 'cpu' for pruning and counting. Defaults to None.
        spatial_grid (dict, optional): the ``spatial=`` section of the joint cells' pruner;
            its ``sites`` are location names on the spatial model's 3D encoder (``input``,
            ``stage2``, ``bev``), the same for every detector. Defaults to None (the
            pruner's default grid and sites).
        seed (int, optional): the fine-tunes' random seed (``randomness.seed``), kept in the
            results; a work dir holds one seed's results. Defaults to None (mmengine draws
            one per fine-tune).
    """

    def __init__(self, work_dir: str, data_root: str, epochs: Optional[int] = None,
                 calib_frames: int = 16, flops_frames: int = 4, checkpoint_root: str = '.',
                 checkpoints: Optional[Dict[str, str]] = None,
                 cfg_options: Optional[dict] = None, device: Optional[str] = None,
                 spatial_grid: Optional[dict] = None, seed: Optional[int] = None):
        self.device = device
        self.spatial_grid = dict(spatial_grid or {})
        self.work_dir, self.data_root, self.epochs = work_dir, data_root, epochs
        self.calib_frames, self.flops_frames = calib_frames, flops_frames
        self.checkpoint_root = checkpoint_root
        self.checkpoints = dict(checkpoints or {})
        self.cfg_options = dict(cfg_options or {})
        if seed is not None:
            self.cfg_options['randomness'] = dict(seed=int(seed))
        os.makedirs(work_dir, exist_ok=True)
        self.path = osp.join(work_dir, RESULTS_FILE)
        self._file = ResultsFile(self.path)
        self.results: Dict[str, Dict] = self._file.load()
        if seed is not None:
            meta = self.results.setdefault('_meta', {})
            if meta.setdefault('seed', int(seed)) != int(seed):
                raise UserError(f"{self.path} holds results of seed {meta['seed']}, not "
                                 f'{seed}: give another seed its own work dir')
        self._check_joint_selection()

    def _check_joint_selection(self):
        """Joint cells are named by budget alone: a work dir holds those of one objective
        and one re-rank (their canonical specs recorded in ``_meta``; none recorded: the
        default sum, no re-rank)."""
        from ..joint.objective import objective_spec
        from ..joint.rerank import rerank_spec
        specs = dict(objective=(objective_spec, 'sum'), rerank=(rerank_spec, None),
                     sites=(lambda sites: sorted(sites) if sites else None, None))
        meta = self.results.get('_meta', {})
        has_joint = any(isinstance(r, dict) and r.get('kind') == 'joint'
                        for k, r in self.results.items() if k != '_meta')
        for what, (spec_of, default) in specs.items():
            key = f'joint_{what}'
            current = spec_of(self.spatial_grid.get(what, default))
            recorded = spec_of(meta.get(key, default))
            if has_joint and recorded != current:
                raise UserError(f'{self.path} holds joint cells of the {what} {recorded}, '
                                 f'not {current}: give another {what} its own work dir')
            if current != spec_of(default):
                self.results.setdefault('_meta', {})[key] = current

    def _save(self):
        self._file.save(self.results)

    def _spatial_of(self, detector: str) -> dict:
        """The joint cells' ``spatial=`` section on ``detector``: its sites named on the
        detector's 3D encoder."""
        grid = dict(self.spatial_grid)
        if grid.get('sites'):
            encoder = DETECTORS[detector].parts['3D'].parts[0]
            grid['sites'] = [f'{encoder}.{s}' for s in grid['sites']]
        return grid

    def _cfg(self, config):
        return load_config(config, cfg_options=self.cfg_options, data_root=self.data_root)

    def _checkpoint(self, detector: str, spatial: Optional[str] = None) -> str:
        key = detector if spatial is None else f'{detector}:{spatial}'
        setup = DETECTORS[detector]
        path = self.checkpoints.get(key) or osp.join(
            self.checkpoint_root,
            setup.checkpoint if spatial is None else setup.spatial[spatial].checkpoint)
        if not osp.isfile(path):
            raise MissingFile(f'{key} checkpoint not found: {path}')
        return path

    def teacher_checkpoint(self, detector: str) -> str:
        """The checkpoint of the dense teacher of ``detector``'s KD cells: ``checkpoints``'
        ``'<detector>:teacher'`` (e.g. the dense model trained on the students' total
        schedule), else the dense demo checkpoint; recorded in ``_meta``, one per work
        dir."""
        path = self.checkpoints.get(f'{detector}:teacher') or self._checkpoint(detector)
        if not osp.isfile(path):
            raise MissingFile(f'{detector}:teacher checkpoint not found: {path}')
        teachers = self.results.setdefault('_meta', {}).setdefault('teachers', {})
        if teachers.setdefault(detector, path) != path:
            raise UserError(f'{self.path} holds KD cells distilled from {teachers[detector]}, '
                            f'not {path}: give another teacher its own work dir')
        return path

    def dense_gmacs(self, detector: str) -> float:
        meta = self.results.setdefault('_meta', {}).setdefault(detector, {})
        if 'dense_gmacs' not in meta:
            cfg = self._cfg(DETECTORS[detector].finetune_config)
            model = build_detector(cfg, self._checkpoint(detector), self.device)
            frames = calibration_batches(cfg, self.flops_frames, 'val')
            meta['dense_gmacs'] = joint_gmacs(model, frames)
            self._save()
        return meta['dense_gmacs']

    def _config(self, cell: Cell) -> str:
        setup = DETECTORS[cell.detector]
        if cell.spatial is None:
            return setup.finetune_config
        sp = setup.spatial[cell.spatial]
        return sp.finetune_config if cell.finetuned else sp.config

    def _prune(self, cell: Cell, config: str, start_ckpt: str, cell_dir: str):
        setup = DETECTORS[cell.detector]
        part_set = setup.parts[cell.parts]
        cfg = self._cfg(config)
        model = build_detector(cfg, start_ckpt, self.device)
        batches = calibration_batches(cfg, self.calib_frames, 'train')
        # a joint cell's budget is a fraction of the dense detector (see joint_target)
        target = cell.budget if not cell.joint else joint_target(
            model, build_detector(self._cfg(setup.finetune_config),
                                  self._checkpoint(cell.detector), self.device),
            batches, cell.budget, self._spatial_of(cell.detector))
        if target > 1:
            raise BudgetBelowFloor(f'{cell.name}: the spatial model with no dropping already '
                                   f'runs below {cell.budget} of the dense FLOPs')
        pruner = build_pruner(cfg, flops_target=target, parts=list(part_set.parts),
                              method=cell.method, estimator=cell.estimator, num_ratios=16,
                              progress=False, budget_of='parts' if part_set.alone else None,
                              include_head_outputs=part_set.head_outputs or None,
                              spatial=self._spatial_of(cell.detector) if cell.joint
                              else None,
                              **{**setup.pruner, **part_set.pruner,
                                 **(dict(min_density=cell.min_density)
                                    if cell.min_density else {})})
        result = pruner.prune(model, batches)
        ckpt = save_result(model, result, osp.join(cell_dir, 'pruned.pth'), start_ckpt,
                           config)
        # layer-wise allocation in network order (Fig. 4): fraction of weights pruned
        allocation = [dict(name=lr.name, part=lr.part, pruned=lr.ratio,
                           macs_share=lr.macs_before / result.macs_before)
                      for lr in result.layers]
        choice = None if not result.spatial else dict(
            keep_ratios=result.spatial['keep_ratios'],
            predicted_distortion=result.spatial['predicted_distortion'],
            objective=result.spatial['objective'],
            measured_distortion=result.measured_distortion, timings=result.timings,
            **(dict(rerank=result.spatial['rerank'], probed=result.spatial['probed'])
               if result.spatial.get('rerank') else {}))
        return ckpt, allocation, choice

    def _cell_dir(self, cell: Cell) -> str:
        return osp.join(self.work_dir, cell.name.replace(':', '_'))

    def model_files(self, name: str) -> Tuple[str, str]:
        """(config, checkpoint) of a cell's result as it was evaluated: the fine-tuned
        checkpoint of a fine-tuned cell, the pruned one of a cell run without fine-tuning,
        the trained one of a dense or spatial model.

        Args:
            name (str): the cell's name (a key of ``results``).
        """
        row = self.results.get(name)
        if row is None:
            raise MissingKey(f'{self.path}: no result {name!r}')
        cell = cell_of(row)
        if row.get('checkpoint'):
            return self._config(cell), row['checkpoint']
        cell_dir = self._cell_dir(cell)
        last = osp.join(cell_dir, 'finetune', 'last_checkpoint')
        if row.get('epochs') and osp.isfile(last):
            with open(last) as f:
                ckpt = f.read().strip()
        elif cell.budget is not None:
            ckpt = osp.join(cell_dir, 'pruned.pth')
        else:
            ckpt = self._checkpoint(cell.detector, cell.spatial)
        return self._config(cell), ckpt

    @property
    def unreachable(self) -> Dict[str, str]:
        """Cells whose budget is below what their prunable layers can reach: name ->
        the pruner's reason (kept in the JSON, so a re-run skips them too)."""
        return self.results.get('_unreachable', {})

    def run(self, cell: Cell, log=print) -> Optional[Dict]:
        """The cell's result row (run now or read from an earlier run); None when its
        budget cannot be reached (recorded in ``unreachable``; the study goes on) or when its
        spatial model's checkpoint is missing (not recorded; the study goes on)."""
        if cell.name in self.results:
            log(f'[ablate] {cell.name}: done before, skipped')
            return self.results[cell.name]
        if cell.name in self.unreachable:
            log(f'[ablate] {cell.name}: unreachable before, skipped')
            return None
        try:
            ckpt = self._checkpoint(cell.detector, cell.spatial)
        except FileNotFoundError as e:
            if cell.spatial is None:
                raise
            # a spatial model not trained yet: the study goes on without its cells (not
            # recorded, so a re-run after the training runs them)
            setup = DETECTORS[cell.detector].spatial[cell.spatial]
            config = config_making(setup.checkpoint) or setup.config
            log(f'[ablate] {cell.name}: skipped: {e} (train it: '
                f'tools/train_demo_checkpoints.py {config})')
            return None
        start = time.perf_counter()
        dense_gmacs = self.dense_gmacs(cell.detector)
        config = self._config(cell)
        cell_dir = self._cell_dir(cell)
        allocation = choice = None
        if cell.budget is not None:
            try:
                ckpt, allocation, choice = self._prune(cell, config, ckpt, cell_dir)
            except BudgetBelowFloor as e:
                self.results.setdefault('_unreachable', {})[cell.name] = str(e)
                self._save()
                log(f'[ablate] {cell.name}: unreachable: {e}')
                return None
        # weight cells and the control are fine-tuned (None: the config's own schedule), both
        # with the BN statistics frozen (docs/ablation.md measures it against updating them);
        # dense and spatial models are evaluated as trained
        finetune = cell.finetuned and self.epochs != 0
        if finetune:
            options = dict(self.cfg_options or {})
            options['custom_hooks'] = [dict(CONTROL_FINETUNE_HOOK if cell.control else
                                            MASKED_FINETUNE_HOOK)]
            if cell.recovery == 'kd':  # the dense model as the frozen teacher
                setup = DETECTORS[cell.detector]
                options['custom_hooks'].append(dict(
                    type='DistillationHook', losses=[dict(x) for x in setup.distill_losses],
                    teacher=dict(config=setup.finetune_config,
                                 checkpoint=self.teacher_checkpoint(cell.detector))))
            out = finetune_and_test(config, self.data_root, osp.join(cell_dir, 'finetune'),
                                    load_from=ckpt, epochs=self.epochs, cfg_options=options)
            metrics, ckpt = out['metrics'], out['checkpoint']
        else:
            metrics = evaluate_checkpoint(config, ckpt, self.data_root,
                                          osp.join(cell_dir, 'eval'), self.cfg_options)
        cfg = self._cfg(config)
        model = build_detector(cfg, ckpt, self.device)
        epochs = 0 if not finetune else (
            self.epochs if self.epochs is not None else cfg.train_cfg.max_epochs)
        gmacs = joint_gmacs(model, calibration_batches(cfg, self.flops_frames, 'val'))
        ap = summarize_kitti_metrics(metrics)
        row = dict(asdict(cell), name=cell.name, kind=cell.kind, gmacs=gmacs,
                   flops_ratio=gmacs / dense_gmacs, ap=ap, epochs=epochs,
                   mAP=moderate_map(ap),
                   allocation=allocation, seconds=time.perf_counter() - start,
                   checkpoint=ckpt,
                   **(dict(joint_choice=choice) if choice else {}))
        self.results[cell.name] = row
        self._save()
        log(f"[ablate] {cell.name}: {row['flops_ratio']:.3f} of dense FLOPs, "
            f"mAP {row['mAP']:.1f} ({row['seconds']:.0f} s)")
        return row


def cell_of(row: Dict) -> Cell:
    """The cell a result row was run for (its fields are in the row).

    Args:
        row (dict): a result row of :class:`Ablation`.
    """
    return Cell(**{f: row[f] for f in Cell.__dataclass_fields__ if f in row})
