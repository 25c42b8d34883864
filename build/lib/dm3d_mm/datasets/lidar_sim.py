"""A spinning multi-beam LiDAR ray-cast against a synthetic scene.

Rays come from the sensor at the origin; each return is the nearest hit among the terrain
(Newton iterations on the height field) and the scene's oriented boxes (slab test), so
occlusion and range-dependent density come out of the geometry. Range noise, random
drop-outs and an incidence-dependent intensity make the cloud look like a real sensor's.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .synthetic_scene import REFLECTIVITY, Scene


@dataclass
class LidarConfig:
    num_beams: int = 64
    elevation_top_deg: float = 2.0
    elevation_bottom_deg: float = -24.8
    azimuth_step_deg: float = 0.2
    half_azimuth_deg: float = 45.0  # only the forward sector is simulated
    max_range: float = 80.0
    range_noise: float = 0.02
    dropout: float = 0.03


@dataclass
class LidarReturn:
    """points: (M, 4) x y z intensity; owner: the labelled object hit (or -1);
    rays_on_object: for each labelled object, how many rays would hit it unoccluded."""
    points: np.ndarray
    owner: np.ndarray
    rays_on_object: np.ndarray


def ray_directions(cfg: LidarConfig) -> np.ndarray:
    """Unit ray directions (R, 3) of one sweep over the forward sector."""
    elev = np.deg2rad(np.linspace(cfg.elevation_top_deg, cfg.elevation_bottom_deg,
                                  cfg.num_beams))
    az = np.deg2rad(np.arange(-cfg.half_azimuth_deg, cfg.half_azimuth_deg + 1e-9,
                              cfg.azimuth_step_deg))
    e, a = np.meshgrid(elev, az, indexing='ij')
    return np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)],
                    -1).reshape(-1, 3)


def _cast_terrain(scene: Scene, d: np.ndarray, max_range: float):
    t = np.full(len(d), np.inf)
    down = d[:, 2] < -1e-3
    dd = d[down]
    tt = scene.terrain.base / dd[:, 2]
    for _ in range(8):
        x, y = tt * dd[:, 0], tt * dd[:, 1]
        f = tt * dd[:, 2] - scene.terrain.height(x, y)
        gx, gy = scene.terrain.gradient(x, y)
        fp = dd[:, 2] - gx * dd[:, 0] - gy * dd[:, 1]
        tt = tt - f / fp
    x, y = tt * dd[:, 0], tt * dd[:, 1]
    ok = (tt > 0) & (tt < max_range) & (
        np.abs(tt * dd[:, 2] - scene.terrain.height(x, y)) < 1e-3)
    tt[~ok] = np.inf
    t[down] = tt
    return t


def _cast_boxes(scene: Scene, d: np.ndarray, chunk: int = 32):
    """Nearest box hit per ray: distance, primitive index, |cos incidence|, and the
    per-object 'would hit if unoccluded' matrix."""
    prims = scene.primitives
    num_obj = len(scene.objects)
    best_t = np.full(len(d), np.inf)
    best_p = np.full(len(d), -1)
    best_cos = np.ones(len(d))
    any_hit = np.zeros((len(d), num_obj), dtype=bool)
    for s in range(0, len(prims), chunk):
        sl = slice(s, s + chunk)
        c, e, yaw = prims.centers[sl], prims.half_sizes[sl], prims.yaws[sl]
        cos, sin = np.cos(yaw), np.sin(yaw)
        # rotate into each box frame (z-axis rotation by -yaw)
        o = -c  # ray origin (0) minus centre
        o_loc = np.stack([cos * o[:, 0] + sin * o[:, 1], -sin * o[:, 0] + cos * o[:, 1],
                          o[:, 2]], -1)  # (B, 3)
        d_loc = np.stack([d[:, None, 0] * cos + d[:, None, 1] * sin,
                          -d[:, None, 0] * sin + d[:, None, 1] * cos,
                          np.broadcast_to(d[:, None, 2], (len(d), len(yaw)))], -1)
        with np.errstate(divide='ignore', invalid='ignore'):
            inv = 1.0 / d_loc
            t1 = (-e - o_loc) * inv
            t2 = (e - o_loc) * inv
        tn = np.minimum(t1, t2)
        tf = np.maximum(t1, t2)
        tn = np.where(np.isnan(tn), -np.inf, tn)
        tf = np.where(np.isnan(tf), np.inf, tf)
        t_near = tn.max(-1)
        t_far = tf.min(-1)
        hit = (t_far >= np.maximum(t_near, 0)) & (t_near > 0)
        t_hit = np.where(hit, t_near, np.inf)
        owners = prims.owners[sl]
        for j in np.unique(owners[owners >= 0]):
            any_hit[:, j] |= hit[:, owners == j].any(1)
        k = t_hit.argmin(1)
        tk = t_hit[np.arange(len(d)), k]
        better = tk < best_t
        axis = tn[np.arange(len(d)), k].argmax(-1)
        cos_inc = np.abs(d_loc[np.arange(len(d)), k, axis])
        best_t = np.where(better, tk, best_t)
        best_p = np.where(better, s + k, best_p)
        best_cos = np.where(better, cos_inc, best_cos)
    return best_t, best_p, best_cos, any_hit


def simulate_sweep(scene: Scene, cfg: LidarConfig, rng: np.random.Generator,
                   directions: Optional[np.ndarray] = None) -> LidarReturn:
    """Ray-cast one sweep; returns points with intensity and per-point owners."""
    d = ray_directions(cfg) if directions is None else directions
    t_ground = _cast_terrain(scene, d, cfg.max_range)
    t_box, p_box, cos_box, any_hit = _cast_boxes(scene, d)
    use_box = t_box < t_ground
    t = np.where(use_box, t_box, t_ground)
    keep = np.isfinite(t) & (t < cfg.max_range) & (rng.random(len(d)) >= cfg.dropout)
    prims = scene.primitives
    refl = np.where(use_box, prims.reflectivity[np.maximum(p_box, 0)],
                    REFLECTIVITY['ground'])
    # ground incidence: angle between the ray and the (nearly vertical) normal
    cos_inc = np.where(use_box, cos_box, np.abs(d[:, 2]))
    owner = np.where(use_box, prims.owners[np.maximum(p_box, 0)], -1)
    t_noisy = t + rng.normal(0, cfg.range_noise, len(t))
    xyz = d * t_noisy[:, None]
    intensity = np.clip(refl * (0.4 + 0.6 * cos_inc) + rng.normal(0, 0.03, len(t)), 0, 1)
    rays_on_object = (any_hit & keep[:, None]).sum(0)
    pts = np.concatenate([xyz, intensity[:, None]], 1)[keep].astype(np.float32)
    return LidarReturn(pts, owner[keep], rays_on_object)
