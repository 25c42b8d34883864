"""Build an mmdet3d detector on a device and load a checkpoint into it (strictly, with the
spatial keep ratios of a joint pruning put in force)."""
import copy
import logging
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from ..errors import MissingFile, UserError
from ..joint.sites import apply_checkpoint_keep_ratios
from ..pruning.checkpoint import read_dm3d_meta

__all__ = ['build_detector', 'default_device', 'load_weights', 'resolve_device']


def default_device() -> str:
    """CUDA when available, else the CPU (the tools' ``--device`` default)."""
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def resolve_device(device: Optional[str] = None) -> str:
    """The device a model is built on, as mmdet3d's ``init_model`` takes it: ``'cuda'``
    gets the current GPU's index (torch 2.11's ``torch.cuda.set_device``, which init_model
    calls, refuses an index-less ``'cuda'``).

    Args:
        device (str, optional): ``'cpu'``, ``'cuda'``, ``'cuda:N'``; None: CUDA when
            available, else the CPU.

    Returns:
        str: e.g. ``'cpu'`` or ``'cuda:0'``.
    """
    dev = torch.device(device or default_device())
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise UserError(f'device {device!r}: CUDA is not available on this machine')
        if dev.index is None:
            dev = torch.device('cuda', torch.cuda.current_device())
    return str(dev)


def load_weights(model: torch.nn.Module, path: str, strict: bool = True) -> Dict:
    """Load a checkpoint's state_dict into ``model``; a checkpoint that does not fit (missing,
    unexpected or mis-shaped keys) is an error naming them unless ``strict=False``, which
    loads the keys that fit and returns the report. A pruned checkpoint's spatial keep ratios
    (``meta['dm3d']['spatial']``) are put in force.

    Args:
        model (nn.Module): the detector.
        path (str): the checkpoint file.
        strict (bool): an error when the checkpoint does not fit. Defaults to True.

    Returns:
        dict: the keys ``missing``, ``unexpected`` and ``mismatched``.
    """
    from mmengine.runner.checkpoint import _load_checkpoint
    if not osp.isfile(path):
        raise MissingFile(f'checkpoint not found: {path}')
    ckpt = _load_checkpoint(path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise UserError(f'{path} holds no state_dict')

    def strip(items):
        return OrderedDict((k[7:] if k.startswith('module.') else k, v) for k, v in items)
    metadata = getattr(state, '_metadata', None)  # per-module versions: spconv layouts
    metadata = None if metadata is None else strip(metadata.items())
    state = strip(state.items())
    own = model.state_dict()
    report = dict(missing=[k for k in own if k not in state],
                  unexpected=[k for k in state if k not in own], mismatched=[])

    def keep(keys):
        out = OrderedDict((k, state[k]) for k in keys)
        if metadata is not None:
            out._metadata = metadata
        return out
    fits = keep([k for k in state if k in own])
    try:  # modules may convert layouts on load (spconv weights): let them judge the shapes
        model.load_state_dict(fits, strict=False)
    except RuntimeError as e:
        report['mismatched'] = re.findall(r'size mismatch for ([^:]+):', str(e))
        if not report['mismatched']:
            raise
        model.load_state_dict(keep([k for k in fits if k not in report['mismatched']]),
                              strict=False)
    if any(report.values()):
        summary = '; '.join(f'{len(v)} {kind} key(s), e.g. {v[0]}'
                            for kind, v in report.items() if v)
        msg = f'checkpoint {path} does not fit {type(model).__name__}: {summary}'
        if strict:
            raise UserError(msg + ' (--allow-partial loads the keys that fit)')
        print_log(msg + '; loaded the keys that fit', logger='current', level=logging.WARNING)
    meta = ckpt.get('meta') or {}
    if meta.get('dataset_meta'):
        model.dataset_meta = meta['dataset_meta']
    # a joint pruning's keep ratios are part of the pruned model (not of its weights)
    ratios = apply_checkpoint_keep_ratios(model, read_dm3d_meta(ckpt))
    if ratios:
        print_log(f'{path}: spatial keep ratios of the pruned model in force: {ratios}',
                  logger='current')
    return report


def build_detector(cfg: Config, checkpoint: Optional[str] = None,
                   device: Optional[str] = None, strict: bool = True):
    """mmdet3d's init_model on ``device`` (default: CUDA when available), with the
    checkpoint loaded strictly (see :func:`load_weights`), in eval mode.

    Args:
        cfg (Config): the detector's config (not changed).
        checkpoint (str, optional): weights to load. Defaults to None (initialised).
        device (str, optional): 'cpu', 'cuda' or 'cuda:N'. Defaults to None.
        strict (bool): see :func:`load_weights`. Defaults to True.

    Returns:
        nn.Module: the detector.
    """
    from mmdet3d.apis import init_model
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise MissingFile(f'checkpoint not found: {checkpoint}')
    # init_model sets model.train_cfg = None on the config it gets: keep the caller's intact
    model = init_model(copy.deepcopy(cfg), None, device=resolve_device(device))
    if checkpoint is not None:
        load_weights(model, checkpoint, strict)
    if not getattr(model, 'dataset_meta', None) and cfg.get('class_names'):
        model.dataset_meta = dict(classes=list(cfg.class_names))
    model.eval()
    return model
