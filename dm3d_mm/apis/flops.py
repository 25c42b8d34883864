"""Count a detector's joint FLOPs on dataset frames or on one KITTI-format point file."""
import logging
import os.path as osp

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log

from ..cost import FlopsCounter, count_flops
from ..errors import MissingFile, UserError
from ..weight.head_outputs import build_head_outputs


def read_point_file(path: str, load_dim: int = 4) -> np.ndarray:
    """The (N, load_dim) points of a float32 KITTI-format file; errors name the problem."""
    if not osp.isfile(path):
        raise MissingFile(f'point file not found: {path}')
    size = osp.getsize(path)
    if size == 0:
        raise UserError(f'empty point cloud: {path} has no points')
    if size % (4 * load_dim):
        raise UserError(f'{path}: {size} bytes is not a whole number of {load_dim}-float32 '
                         'points (x, y, z, intensity)')
    pts = np.fromfile(path, dtype=np.float32).reshape(-1, load_dim)
    if not np.isfinite(pts).all():
        raise UserError(f'{path} holds NaN or infinite coordinates')
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
    frame with zero voxels and zero MACs (the detector is not run).

    Args:
        model (nn.Module): the detector (its config is the one it was built from).
        path (str): a KITTI-format float32 point file (x, y, z, intensity).

    Returns:
        FlopsCounter: the count of that frame.
    """
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
    """The config's dataloader of ``split``, one frame per batch, in this process; an info
    file that does not load is an error naming the file, the entry and the key.

    Args:
        cfg (Config): the config.
        split (str): 'train', 'val' or 'test'. Defaults to 'test'.
    """
    from mmengine.runner import Runner

    from ..pruning.calib_frames import info_error, innermost
    loader_cfg = cfg.get(f'{split}_dataloader').copy()
    loader_cfg.update(batch_size=1, num_workers=0, persistent_workers=False)
    try:
        return Runner.build_dataloader(loader_cfg)
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise info_error(innermost(loader_cfg['dataset']), split, e) from e


def count_on_dataset(model, cfg: Config, frames: int = 8, split: str = 'test') -> FlopsCounter:
    """Joint FLOPs over the first ``frames`` frames of a split (exactly those are loaded).

    Args:
        model (nn.Module): the detector.
        cfg (Config): its config (the split's dataset and pipeline).
        frames (int): frames counted. Defaults to 8.
        split (str): 'train', 'val' or 'test'. Defaults to 'test'.

    Returns:
        FlopsCounter: the count over those frames.
    """
    if frames < 1:
        raise UserError(f'--frames must be at least 1, got {frames}')
    from mmengine.dataset import pseudo_collate

    from ..pruning.calib_frames import load_sample
    dataset = single_frame_loader(cfg, split).dataset
    with torch.no_grad(), FlopsCounter(model) as counter:
        for i in range(min(frames, len(dataset))):  # frame N+1 is never loaded
            batch = pseudo_collate([load_sample(dataset, i, split)])
            model.test_step(batch)
            counter.add_frames(len(batch['data_samples']))
    return counter


def joint_gmacs(model, batches) -> float:
    """The joint GMACs per frame of ``model`` as it is (masks, spatial modules in force),
    counted on ``batches``.

    Args:
        model (nn.Module): an mmdet3d detector.
        batches (Sequence[dict]): frames, one per batch.

    Returns:
        float: GMACs per frame.
    """
    counter = count_flops(model, batches, build_head_outputs(model))
    return counter.total_macs() / counter.frames / 1e9
