"""Calibration frames from a config, and the one place their settings are resolved; frames
loaded through a dataset's pipeline with errors that name the sample and the transform.

Precedence: an explicit argument (hook argument, command-line flag) > the config's
``pruning.calib`` > ``DEFAULT_CALIB``.
"""
import copy
import os.path as osp
from typing import List, Optional

import numpy as np
from mmengine.config import Config

from ..errors import UserError

DEFAULT_CALIB = dict(frames=16, split='train')
SPLITS = ('train', 'val', 'test')


def resolve_calib(cfg: Config, override: Optional[dict] = None,
                  pruning: Optional[dict] = None) -> dict:
    """Calibration settings: ``override`` (None values ignored) > the pruning section's
    ``calib`` (``pruning``, else ``cfg.pruning``) > defaults; unknown keys are an error.

    Args:
        cfg (Config): the detector's config.
        override (dict, optional): explicit settings (a flag, a hook argument).
            Defaults to None.
        pruning (dict, optional): the pruning section in force where it is not the
            config's (a ``DM3DPruningHook(pruner=...)``). Defaults to None.

    Returns:
        dict: ``frames`` and ``split``.
    """
    out = dict(DEFAULT_CALIB)
    section = pruning or cfg.get('pruning') or {}
    for source, where in ((section.get('calib') or {}, 'pruning.calib'),
                          (override or {}, 'calib')):
        unknown = sorted(set(source) - set(DEFAULT_CALIB))
        if unknown:
            raise UserError(f'{where}: unknown key(s) {unknown}; known: {sorted(DEFAULT_CALIB)}')
        out.update({k: v for k, v in source.items() if v is not None})
    if not isinstance(out['frames'], int) or out['frames'] < 1:
        raise UserError(f"need at least one calibration frame, got frames={out['frames']!r}")
    if out['split'] not in SPLITS:
        raise UserError(f"calibration split must be one of {SPLITS}, got {out['split']!r}")
    return out


class SampleError(UserError):
    """A sample failed in the data pipeline; the message names the split, the index, the
    point file, the transform and the error (a KeyError: the missing key)."""


def _where(exc: BaseException) -> str:
    """'<Transform>.<method> (file:line)' of the innermost frame run by a transform object,
    else the innermost frame."""
    import traceback
    frames = list(traceback.walk_tb(exc.__traceback__))
    for frame, line in reversed(frames):
        owner = frame.f_locals.get('self')
        if owner is not None and 'transform' in type(owner).__module__:
            return (f'{type(owner).__name__}.{frame.f_code.co_name} '
                    f'({frame.f_code.co_filename}:{line})')
    if not frames:
        return 'unknown place'
    frame, line = frames[-1]
    return f'{frame.f_code.co_name} ({frame.f_code.co_filename}:{line})'


def load_sample(dataset, index: int, split: str = 'test'):
    """``dataset[index]``; an error in its pipeline becomes a :class:`SampleError` naming the
    sample (split, index, point file), the transform and the problem.

    Args:
        dataset: an mmengine dataset.
        index (int): the sample.
        split (str): the split's name, for the message. Defaults to 'test'.
    """
    try:
        return dataset[index]
    except Exception as e:  # noqa: BLE001 - any pipeline error, re-raised with its sample
        try:
            info = dataset.get_data_info(index)
            path = (info.get('lidar_points') or {}).get('lidar_path') or info.get('lidar_path')
        except Exception:  # noqa: BLE001 - the info itself may be what is broken
            path = None
        what = f"missing key {e.args[0]!r}" if isinstance(e, KeyError) and e.args else \
            f'{type(e).__name__}: {e}'
        raise SampleError(f'{split} sample {index}' + (f' ({path})' if path else '')
                          + f': {what} in {_where(e)}') from e


def info_error(dataset_cfg, split: str, exc: BaseException) -> SampleError:
    """A :class:`SampleError` for a dataset that failed to load its info file: it names the
    file, the first entry that lacks a missing key (its index and token or sample index) and
    where the error arose.

    Args:
        dataset_cfg: the (innermost) dataset config.
        split (str): the split's name, for the message.
        exc (BaseException): what building the dataset raised.
    """
    root = dataset_cfg.get('data_root') or ''
    ann = dataset_cfg.get('ann_file') or ''
    path = osp.join(root, ann) if ann else '(no ann_file)'
    key = exc.args[0] if isinstance(exc, KeyError) and exc.args else None
    entry = ''
    if key is not None and osp.isfile(path):
        try:
            from mmengine.fileio import load
            infos = load(path)
            infos = infos.get('data_list', infos) if isinstance(infos, dict) else infos
            for i, info in enumerate(infos):
                if isinstance(info, dict) and key not in info:
                    name = info.get('token', info.get('sample_idx'))
                    entry = f' entry {i}' + (f' ({name})' if name is not None else '')
                    break
        except Exception:  # noqa: BLE001 - the file itself may be what is broken
            pass
    what = f'missing key {key!r}' if key is not None else f'{type(exc).__name__}: {exc}'
    return SampleError(f'{split} info file {path}{entry}: {what} in {_where(exc)}')


def innermost(dataset_cfg):
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
    ds_cfg = copy.deepcopy(innermost(cfg.test_dataloader.dataset))
    if split == 'train':
        src = innermost(cfg.train_dataloader.dataset)
        for key in ('ann_file', 'data_prefix', 'data_root'):
            if key in src:
                ds_cfg[key] = copy.deepcopy(src[key])
    elif split == 'val':
        ds_cfg = copy.deepcopy(innermost(cfg.val_dataloader.dataset))
    ds_cfg['test_mode'] = True
    # the pipeline's transforms resolve in the config's scope, whatever is current
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope') or 'mmdet3d'):
        try:
            dataset = DATASETS.build(ds_cfg)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise info_error(ds_cfg, split, e) from e
    if len(dataset) == 0:
        raise UserError(f'the {split} split is empty')
    idx = np.unique(np.linspace(0, len(dataset) - 1, min(frames, len(dataset))).round())
    return [pseudo_collate([load_sample(dataset, int(i), split)]) for i in idx]
