"""Spatial vs weight sparsity ablation on the demo benchmark (DM3D paper Tab. 4-6, Fig. 1).

A *cell* is one variant: dense, spatial (the SPS-Conv demo SECOND, trained with 50 % of the
voxels pruned in place), weight (DM3D at a budget, optionally restricted to some parts or
with another estimator) or spatial + weight. A weight cell prunes the dense (or, with
spatial, the SPS-Conv) demo checkpoint, fine-tunes briefly with the masks kept
(DM3DPruningHook), evaluates on val and counts its joint FLOPs against the dense model on the
same frames. Results go to one JSON file, written after every cell, so a re-run skips the
finished cells.
"""
import json
import os
import os.path as osp
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence

from ..flops import count_flops
from ..weight.head_outputs import build_head_outputs
from .config_utils import load_config
from .demo import evaluate_checkpoint
from .demo_report import summarize_kitti_metrics
from .finetune import finetune_and_test
from .flops import build_detector
from .prune import build_pruner, calibration_batches, save_result

DENSE_CONFIG = 'dm3d_mm::demo/second_synth-kitti_cpu_finetune.py'
SPATIAL_CONFIG = 'dm3d_mm::demo/second_synth-kitti_cpu_spss50.py'
SPATIAL_FT_CONFIG = 'dm3d_mm::demo/second_synth-kitti_cpu_spss50_dm3d50.py'
DENSE_CKPT = 'checkpoints/second_synth-kitti_cpu.pth'
SPATIAL_CKPT = 'checkpoints/second_synth-kitti_cpu_spss50.pth'
PART_SETS = {'3D': ['middle_encoder'], '2D': ['backbone', 'neck'], 'head': ['bbox_head'],
             'all': ['middle_encoder', 'backbone', 'neck']}


@dataclass
class Cell:
    spatial: bool = False
    budget: Optional[float] = None  # weight pruning to this fraction of the joint FLOPs
    parts: str = 'all'
    estimator: str = 'fisher'

    @property
    def name(self) -> str:
        if not self.spatial and self.budget is None:
            return 'dense'
        bits = ['spss50'] if self.spatial else []
        if self.budget is not None:
            bits.append(f'dm3d{round(self.budget * 100)}-{self.parts}-{self.estimator}')
        return '+'.join(bits)

    @property
    def kind(self) -> str:
        return {(False, False): 'dense', (True, False): 'spatial', (False, True): 'weight',
                (True, True): 'spatial + weight'}[(self.spatial, self.budget is not None)]


def plan(budgets: Sequence[float], parts: bool = False, actual: bool = False) -> List[Cell]:
    """Dense, spatial, weight and spatial + weight at each budget (Tab. 6); with ``parts``
    weight pruning of 3D / 2D / head alone at the first budget (Tab. 4); with ``actual`` the
    actual-distortion estimator at the first budget (Tab. 5)."""
    cells = [Cell(), Cell(spatial=True)]
    for b in budgets:
        cells += [Cell(budget=b), Cell(spatial=True, budget=b)]
    if parts:
        cells += [Cell(budget=budgets[0], parts=p) for p in ('3D', '2D', 'head')]
    if actual:
        cells.append(Cell(budget=budgets[0], estimator='actual'))
    return cells


def joint_gmacs(model, batches) -> float:
    counter = count_flops(model, batches, build_head_outputs(model))
    return counter.total_macs() / counter.frames / 1e9


class Ablation:
    """Runs cells, keeps results in ``work_dir/ablation.json`` (atomic writes)."""

    def __init__(self, work_dir: str, data_root: str, epochs: Optional[int] = None,
                 calib_frames: int = 16,
                 flops_frames: int = 4, dense_ckpt: str = DENSE_CKPT,
                 cfg_options: Optional[dict] = None, device: Optional[str] = None,
                 spatial_ckpt: str = SPATIAL_CKPT):
        self.device = device
        self.work_dir, self.data_root, self.epochs = work_dir, data_root, epochs
        self.calib_frames, self.flops_frames = calib_frames, flops_frames
        self.dense_ckpt, self.spatial_ckpt = dense_ckpt, spatial_ckpt
        self.cfg_options = cfg_options
        if not osp.isfile(dense_ckpt):
            raise FileNotFoundError(f'dense checkpoint not found: {dense_ckpt}')
        os.makedirs(work_dir, exist_ok=True)
        self.path = osp.join(work_dir, 'ablation.json')
        self.results: Dict[str, Dict] = {}
        if osp.exists(self.path):
            with open(self.path) as f:
                self.results = json.load(f)

    def _save(self):
        tmp = self.path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(self.results, f, indent=1)
        os.replace(tmp, self.path)

    def _cfg(self, config):
        return load_config(config, cfg_options=self.cfg_options, data_root=self.data_root)

    def dense_gmacs(self) -> float:
        if 'dense_gmacs' not in self.results.get('_meta', {}):
            cfg = self._cfg(DENSE_CONFIG)
            model = build_detector(cfg, self.dense_ckpt, self.device)
            frames = calibration_batches(cfg, self.flops_frames, 'val')
            self.results.setdefault('_meta', {})['dense_gmacs'] = joint_gmacs(model, frames)
            self._save()
        return self.results['_meta']['dense_gmacs']

    def run(self, cell: Cell, log=print) -> Dict:
        if cell.name in self.results:
            log(f'[ablate] {cell.name}: done before, skipped')
            return self.results[cell.name]
        start = time.perf_counter()
        dense_gmacs = self.dense_gmacs()
        config = DENSE_CONFIG if not cell.spatial else (
            SPATIAL_FT_CONFIG if cell.budget is not None else SPATIAL_CONFIG)
        cell_dir = osp.join(self.work_dir, cell.name)
        start_ckpt = ckpt = self.spatial_ckpt if cell.spatial else self.dense_ckpt
        if not osp.isfile(ckpt):
            raise FileNotFoundError(f'checkpoint not found: {ckpt}')
        cfg = self._cfg(config)
        if cell.budget is not None:
            model = build_detector(cfg, start_ckpt, self.device)
            # a part alone goes to the budget of its own FLOPs (Tab. 4); the head of an anchor
            # detector has only its output convs
            alone = cell.parts != 'all'
            pruner = build_pruner(cfg, flops_target=cell.budget, parts=PART_SETS[cell.parts],
                                  estimator=cell.estimator, num_ratios=16, progress=False,
                                  budget_of='parts' if alone else None,
                                  include_head_outputs=(cell.parts == 'head') or None)
            cfg = self._cfg(config)  # init_model edits the config it is given
            result = pruner.prune(model, calibration_batches(cfg, self.calib_frames, 'train'))
            ckpt = save_result(model, result, osp.join(cell_dir, 'pruned.pth'), start_ckpt,
                               config)
        # weight cells are fine-tuned (None: the config's own schedule); the spatial model is
        # trained with its pruning in place already
        if self.epochs != 0 and cell.budget is not None:
            options = dict(self.cfg_options or {})
            # the pruned model keeps its trained BN statistics (measured at 33 % FLOPs, 2
            # epochs: mAP 73.8 frozen vs 31.8 updated)
            options['custom_hooks'] = [dict(type='DM3DPruningHook', prune_on_start=False,
                                            flops_frames=0, freeze_norm_stats=True)]
            out = finetune_and_test(config, self.data_root, osp.join(cell_dir, 'finetune'),
                                    load_from=ckpt, epochs=self.epochs, cfg_options=options)
            metrics, ckpt = out['metrics'], out['checkpoint']
        else:
            metrics = evaluate_checkpoint(config, ckpt, self.data_root,
                                          osp.join(cell_dir, 'eval'))
        model = build_detector(self._cfg(config), ckpt, self.device)
        gmacs = joint_gmacs(model, calibration_batches(self._cfg(config), self.flops_frames,
                                                       'val'))
        ap = summarize_kitti_metrics(metrics)
        epochs = 0 if cell.budget is None else (
            self.epochs if self.epochs is not None else self._cfg(config).train_cfg.max_epochs)
        row = dict(asdict(cell), name=cell.name, kind=cell.kind, gmacs=gmacs,
                   flops_ratio=gmacs / dense_gmacs, ap=ap, epochs=epochs,
                   mAP=sum(ap[c]['moderate'] for c in ('Car', 'Pedestrian', 'Cyclist')) / 3,
                   seconds=time.perf_counter() - start)
        self.results[cell.name] = row
        self._save()
        log(f"[ablate] {cell.name}: {row['flops_ratio']:.3f} of dense FLOPs, "
            f"mAP {row['mAP']:.1f}")
        return row
