"""Calibration frames from a config, and the one place their settings are resolved.

Precedence: an explicit argument (hook argument, command-line flag) > the config's
``pruning.calib`` > ``DEFAULT_CALIB``.
"""
import copy
from typing import List, Optional

import numpy as np
from mmengine.config import Config

DEFAULT_CALIB = dict(frames=16, split='train')
SPLITS = ('train', 'val', 'test')


def resolve_calib(cfg: Config, override: Optional[dict] = None) -> dict:
    """Calibration settings: ``override`` (None values ignored) > ``cfg.pruning.calib`` >
    defaults; unknown keys are an error."""
    out = dict(DEFAULT_CALIB)
    for source, where in (((cfg.get('pruning') or {}).get('calib') or {}, 'pruning.calib'),
                          (override or {}, 'calib')):
        unknown = sorted(set(source) - set(DEFAULT_CALIB))
        if unknown:
            raise ValueError(f'{where}: unknown key(s) {unknown}; known: {sorted(DEFAULT_CALIB)}')
        out.update({k: v for k, v in source.items() if v is not None})
    if not isinstance(out['frames'], int) or out['frames'] < 1:
        raise ValueError(f"need at least one calibration frame, got frames={out['frames']!r}")
    if out['split'] not in SPLITS:
        raise ValueError(f"calibration split must be one of {SPLITS}, got {out['split']!r}")
    return out


def _innermost(dataset_cfg):
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def calibration_batches(cfg: Config, frames: int = 16, split: str = 'train') -> List[dict]:
    """``frames`` evenly spaced frames of a split, through the *test* pipeline (no
    augmentation), one frame per batch."""
    from mmdet3d.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DefaultScope
    resolve_calib(Config(), dict(frames=frames, split=split))  # validates both
    ds_cfg = copy.deepcopy(_innermost(cfg.test_dataloader.dataset))
    if split == 'train':
        src = _innermost(cfg.train_dataloader.dataset)
        for key in ('ann_file', 'data_prefix', 'data_root'):
            if key in src:
                ds_cfg[key] = copy.deepcopy(src[key])
    elif split == 'val':
        ds_cfg = copy.deepcopy(_innermost(cfg.val_dataloader.dataset))
    ds_cfg['test_mode'] = True
    # the pipeline's transforms resolve in the config's scope, whatever is current
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope') or 'mmdet3d'):
        dataset = DATASETS.build(ds_cfg)
    if len(dataset) == 0:
        raise ValueError(f'the {split} split is empty')
    idx = np.unique(np.linspace(0, len(dataset) - 1, min(frames, len(dataset))).round())
    return [pseudo_collate([dataset[int(i)]]) for i in idx]
