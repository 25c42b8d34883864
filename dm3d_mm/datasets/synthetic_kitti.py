"""Generate the embedded synthetic LiDAR benchmark in the KITTI layout.

Every frame is drawn from its own seed (base seed, frame index), so the output is the same
whatever the number of worker processes. Validation frames come first (ids 0..num_val-1)
because mmdet3d's KittiMetric looks ground truth up by sample_idx as a list position.
"""
import os
import os.path as osp
import pickle
from dataclasses import dataclass, field
from multiprocessing import Pool
from typing import Dict, List, Optional

import numpy as np

from ..progress import progress_bar
from . import kitti_layout as kl
from .lidar_sim import LidarConfig, ray_directions, simulate_sweep
from .synthetic_scene import SceneConfig, sample_scene


@dataclass
class SyntheticKittiConfig:
    num_train: int = 300
    num_val: int = 100
    seed: int = 0
    scene: SceneConfig = field(default_factory=SceneConfig)
    lidar: LidarConfig = field(default_factory=LidarConfig)


def frame_rng(seed: int, idx: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, idx]))


def generate_frame(cfg: SyntheticKittiConfig, idx: int):
    """Points (N, 4) float32 inside CAM2's view, and annotations, of frame idx."""
    rng = frame_rng(cfg.seed, idx)
    scene = sample_scene(rng, cfg.scene)
    dirs = ray_directions(cfg.lidar)
    dirs = dirs[kl.in_image(dirs * 10.0)]  # only beams the camera can see
    ret = simulate_sweep(scene, cfg.lidar, rng, dirs)
    keep = kl.in_image(ret.points[:, :3])
    ret.points, ret.owner = ret.points[keep], ret.owner[keep]
    return ret.points, kl.annotate(scene, ret)


def _write_one(args):
    cfg, root, idx, with_db = args
    points, annos = generate_frame(cfg, idx)
    train_dir = osp.join(root, 'training')
    points.tofile(osp.join(train_dir, 'velodyne', f'{idx:06d}.bin'))
    kl.write_label(osp.join(train_dir, 'label_2', f'{idx:06d}.txt'), annos)
    kl.write_calib(osp.join(train_dir, 'calib', f'{idx:06d}.txt'))
    db = kl.write_gt_database(root, idx, points, annos, 0) if with_db else []
    return idx, kl.frame_info(idx, annos), db, len(points)


def generate(root: str, cfg: SyntheticKittiConfig, workers: Optional[int] = None,
             progress: bool = True) -> Dict:
    """Write the benchmark under root; returns summary statistics."""
    for sub in ('velodyne', 'label_2', 'calib'):
        os.makedirs(osp.join(root, 'training', sub), exist_ok=True)
    reduced = osp.join(root, 'training', 'velodyne_reduced')
    if not osp.lexists(reduced):  # points are already limited to CAM2's view
        os.symlink('velodyne', reduced)
    os.makedirs(osp.join(root, 'ImageSets'), exist_ok=True)
    val_ids = list(range(cfg.num_val))
    train_ids = list(range(cfg.num_val, cfg.num_val + cfg.num_train))
    jobs = [(cfg, root, i, i >= cfg.num_val) for i in val_ids + train_ids]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    results = []
    bar = progress_bar(len(jobs), progress)
    with Pool(workers) as pool:
        for res in pool.imap_unordered(_write_one, jobs, chunksize=4):
            results.append(res)
            if bar:
                bar.update()
    results.sort(key=lambda r: r[0])
    infos = {r[0]: r[1] for r in results}
    db_infos: Dict[str, List[Dict]] = {}
    group = 0
    for _, _, db, _ in results:
        for d in db:
            d['group_id'] = group
            group += 1
            db_infos.setdefault(d['name'], []).append(d)
    for split, ids in (('train', train_ids), ('val', val_ids),
                       ('trainval', val_ids + train_ids)):
        with open(osp.join(root, 'ImageSets', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(f'{i:06d}' for i in ids) + '\n')
        with open(osp.join(root, f'kitti_infos_{split}.pkl'), 'wb') as f:
            pickle.dump(kl.info_file([infos[i] for i in ids]), f)
    with open(osp.join(root, 'kitti_dbinfos_train.pkl'), 'wb') as f:
        pickle.dump(db_infos, f)
    counts: Dict[str, int] = {}
    for info in infos.values():
        for inst in info['instances']:
            name = [k for k, v in kl.KITTI_CATEGORIES.items() if v == inst['bbox_label']][0]
            counts[name] = counts.get(name, 0) + 1
    return dict(frames=len(results), objects=counts,
                mean_points=float(np.mean([r[3] for r in results])))
