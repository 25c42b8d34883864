"""Count a detector's joint FLOPs on dataset frames or on one KITTI-format point file."""
import copy
import logging
import re
from collections import OrderedDict
import os.path as osp
from typing import Dict, Optional

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log

from ..cost import FlopsCounter
from ..joint.sites import apply_checkpoint_keep_ratios
from ..pruning.checkpoint import read_dm3d_meta


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
            raise ValueError(f'device {device!r}: CUDA is not available on this machine')
        if dev.index is None:
            dev = torch.device('cuda', torch.cuda.current_device())
    return str(dev)


def load_weights(model: torch.nn.Module, path: str, strict: bool = True) -> Dict:
    """Load a checkpoint's state_dict into ``model``; a checkpoint that does not fit (missing,
    unexpected or mis-shaped keys) is an error naming them unless ``strict=False``, which
    loads the keys that fit and returns the report."""
    from mmengine.runner.checkpoint import _load_checkpoint
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    ckpt = _load_checkpoint(path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f'{path} holds no state_dict')

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
            raise ValueError(msg + ' (--allow-partial loads the keys that fit)')
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
    checkpoint loaded strictly (see :func:`load_weights`)."""
    from mmdet3d.apis import init_model
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    # init_model sets model.train_cfg = None on the config it gets: keep the caller's intact
    model = init_model(copy.deepcopy(cfg), None, device=resolve_device(device))
    if checkpoint is not None:
        load_weights(model, checkpoint, strict)
    if not getattr(model, 'dataset_meta', None) and cfg.get('class_names'):
        model.dataset_meta = dict(classes=list(cfg.class_names))
    model.eval()
    return model


def read_point_file(path: str, load_dim: int = 4) -> np.ndarray:
    """The (N, load_dim) points of a float32 KITTI-format file; errors name the problem."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'point file not found: {path}')
    size = osp.getsize(path)
    if size == 0:
        raise ValueError(f'empty point cloud: {path} has no points')
    if size % (4 * load_dim):
        raise ValueError(f'{path}: {size} bytes is not a whole number of {load_dim}-float32 '
                         'points (x, y, z, intensity)')
    pts = np.fromfile(path, dtype=np.float32).reshape(-1, load_dim)
    if not np.isfinite(pts).all():
        raise ValueError(f'{path} holds NaN or infinite coordinates')
    return pts


def check_point_file(path: str, load_dim: int = 4) -> int:
    """Number of points in a float32 KITTI-format file; errors name the problem."""
    return len(read_point_file(path, load_dim))


def points_in_range(model, pts: np.ndarray) -> int:
    """Points of an (N, >= 3) array inside the model's voxelization range."""
    layer = getattr(model.data_preprocessor, 'voxel_layer', None)
    rng = getattr(layer, 'point_cloud_range', None)
    if rng is None:
        return len(pts)
    lo, hi = np.asarray(rng[:3], np.float32), np.asarray(rng[3:], np.float32)
    return int(((pts[:, :3] >= lo) & (pts[:, :3] < hi)).all(1).sum())


def count_on_points(model, path: str) -> FlopsCounter:
    """Joint FLOPs of one forward on a point file, through the config's test pipeline. A
    cloud with no point inside the point range voxelizes to nothing: it is counted as one
    frame with zero voxels and zero MACs (the detector is not run)."""
    from mmdet3d.apis import inference_detector
    pts = read_point_file(path)
    behind = int((pts[:, 0] < 0).sum())
    if behind:  # KITTI's velodyne_reduced keeps the camera's view only, all at x > 0
        print_log(f'{path}: {behind} of {len(pts)} points lie behind the sensor (x < 0), a '
                  'full 360-degree scan: they are counted as given (KITTI configs expect '
                  "velodyne_reduced, the camera's view; their point range drops x < 0)",
                  logger='current', level=logging.WARNING)
    if points_in_range(model, pts) == 0:
        print_log(f'{path}: no point inside the point range: 0 voxels, 0 MACs',
                  logger='current', level=logging.WARNING)
        counter = FlopsCounter(model)
        counter.add_frames(1)
        return counter
    with torch.no_grad(), FlopsCounter(model) as counter:
        inference_detector(model, path)
        counter.add_frames(1)
    return counter


def single_frame_loader(cfg: Config, split: str = 'test'):
    """The config's test (or val) dataloader, one frame per batch, in this process."""
    from mmengine.runner import Runner
    loader_cfg = cfg.get(f'{split}_dataloader').copy()
    loader_cfg.update(batch_size=1, num_workers=0, persistent_workers=False)
    return Runner.build_dataloader(loader_cfg)


def count_on_dataset(model, cfg: Config, frames: int = 8, split: str = 'test') -> FlopsCounter:
    """Joint FLOPs over the first ``frames`` frames of the config's test (or val) split."""
    if frames < 1:
        raise ValueError(f'--frames must be at least 1, got {frames}')
    from mmengine.dataset import pseudo_collate

    from ..pruning.calib_frames import load_sample
    dataset = single_frame_loader(cfg, split).dataset
    with torch.no_grad(), FlopsCounter(model) as counter:
        for i in range(min(frames, len(dataset))):  # frame N+1 is never loaded
            batch = pseudo_collate([load_sample(dataset, i, split)])
            model.test_step(batch)
            counter.add_frames(len(batch['data_samples']))
    return counter
