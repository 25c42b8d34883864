"""Count a detector's joint FLOPs on dataset frames or on one KITTI-format point file."""
import os.path as osp
from typing import Optional

import numpy as np
import torch
from mmengine.config import Config

from ..flops import FlopsCounter


def build_detector(cfg: Config, checkpoint: Optional[str] = None):
    """mmdet3d's init_model on CPU, with a clear error for a missing checkpoint."""
    from mmdet3d.apis import init_model
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    model = init_model(cfg, checkpoint, device='cpu')
    model.eval()
    return model


def check_point_file(path: str, load_dim: int = 4) -> int:
    """Number of points in a float32 KITTI-format file; errors name the problem."""
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
    return len(pts)


def count_on_points(model, path: str) -> FlopsCounter:
    """Joint FLOPs of one forward on a point file, through the config's test pipeline."""
    from mmdet3d.apis import inference_detector
    check_point_file(path)
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
    loader = single_frame_loader(cfg, split)
    with torch.no_grad(), FlopsCounter(model) as counter:
        for i, batch in enumerate(loader):
            if i >= frames:
                break
            model.test_step(batch)
            counter.add_frames(len(batch['data_samples']))
    return counter
