"""prune(): calibration frames from a config, the registry-built pruner, pruned checkpoint and
reports. Used by tools/prune.py and the benchmarks."""
import copy
import json
import os
import os.path as osp
from typing import Dict, List, Optional

import numpy as np
from mmengine.config import Config, ConfigDict

from ..registry import PRUNERS
from ..weight.checkpoint import save_pruned_checkpoint
from ..weight.pruner import PruneResult


def _innermost(dataset_cfg):
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def calibration_batches(cfg: Config, frames: int = 16, split: str = 'train') -> List[dict]:
    """``frames`` evenly spaced frames of a split, through the *test* pipeline (no
    augmentation), one frame per batch."""
    from mmengine.dataset import pseudo_collate
    from mmdet3d.registry import DATASETS
    if frames < 1:
        raise ValueError(f'need at least one calibration frame, got {frames}')
    if split not in ('train', 'val', 'test'):
        raise ValueError(f"calibration split must be train, val or test, got {split!r}")
    ds_cfg = copy.deepcopy(_innermost(cfg.test_dataloader.dataset))
    if split == 'train':
        src = _innermost(cfg.train_dataloader.dataset)
        for key in ('ann_file', 'data_prefix', 'data_root'):
            if key in src:
                ds_cfg[key] = copy.deepcopy(src[key])
    elif split == 'val':
        ds_cfg = copy.deepcopy(_innermost(cfg.val_dataloader.dataset))
    ds_cfg['test_mode'] = True
    dataset = DATASETS.build(ds_cfg)
    if len(dataset) == 0:
        raise ValueError(f'the {split} split is empty')
    idx = np.unique(np.linspace(0, len(dataset) - 1, min(frames, len(dataset))).round())
    return [pseudo_collate([dataset[int(i)]]) for i in idx]


def build_pruner(cfg: Config, **overrides):
    """The config's ``pruning`` dict (or DM3DPruner defaults) with CLI overrides."""
    pcfg = ConfigDict(cfg.get('pruning', dict(type='DM3DPruner', flops_target=0.5)))
    pcfg.setdefault('type', 'DM3DPruner')
    for k, v in overrides.items():
        if v is not None:
            pcfg[k] = v
    pcfg.pop('calib', None)
    return PRUNERS.build(pcfg)


def write_reports(result: PruneResult, out_dir: str, extra: Optional[Dict] = None) -> Dict:
    """prune_report.json, prune_report.md and layer_sparsity.png in out_dir."""
    from ..weight.report import markdown_report, sparsity_plot
    os.makedirs(out_dir, exist_ok=True)
    info = dict(result.info(), **(extra or {}))
    info['curves'] = result.curves
    paths = dict(json=osp.join(out_dir, 'prune_report.json'),
                 md=osp.join(out_dir, 'prune_report.md'),
                 png=osp.join(out_dir, 'layer_sparsity.png'))
    with open(paths['json'], 'w') as f:
        json.dump(info, f, indent=1)
    with open(paths['md'], 'w') as f:
        f.write(markdown_report(result, extra))
    sparsity_plot(result, paths['png'])
    return paths


def save_result(model, result: PruneResult, path: str, source: Optional[str],
                config: str, extra: Optional[Dict] = None) -> str:
    info = dict(result.info(), **dict(extra or {}, config=config))
    info.pop('layers')
    info['allocation'] = {lr.name: lr.ratio for lr in result.layers}
    return save_pruned_checkpoint(path, model, result.masks, info, source=source,
                                  base_meta=dict(dataset_meta=getattr(model, 'dataset_meta',
                                                                      None)))
