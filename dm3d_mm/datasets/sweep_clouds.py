"""Full-surround multi-sweep point clouds at a real sensor's density (timing inputs).

The synthetic benchmark simulates KITTI's forward camera sector only. Full-width nuScenes
detectors (CenterPoint) see a 32-beam spinning LiDAR all round, ten sweeps merged with each
point's time lag as a fifth column: about 34 k points a sweep on nuScenes. This ray-casts the
synthetic scenes with such a sensor, each sweep with its own firing azimuths (the sweeps of
an ego-motion-compensated, stopped car), so timings see a realistic point count, voxel count
and occupancy pattern. The open sky above the 0 deg beams returns nothing in these scenes, so
a sweep has about 24 k points and a 10-sweep frame about 240 k.
"""
import numpy as np

from ..errors import UserError
from .lidar_sim import LidarConfig, ray_directions, simulate_sweep
from .synthetic_scene import sample_scene

# an HDL-32E: 32 beams from +10.67 to -30.67 deg, about 1,080 firings a turn
NUSCENES_LIDAR = LidarConfig(num_beams=32, elevation_top_deg=10.67,
                             elevation_bottom_deg=-30.67, azimuth_step_deg=0.33,
                             half_azimuth_deg=180.0, max_range=70.0)


def surround_sweeps(seed: int, sweeps: int = 10,
                    lidar: LidarConfig = NUSCENES_LIDAR) -> np.ndarray:
    """One merged multi-sweep cloud of a synthetic scene, in nuScenes' 5-column layout.

    Args:
        seed (int): Scene and sensor noise seed.
        sweeps (int): Sweeps merged (the key frame's first). Defaults to 10.
        lidar (LidarConfig): The sensor. Defaults to a 32-beam HDL-32E.

    Returns:
        np.ndarray: (N, 5) float32 x, y, z, intensity, time lag (s, 0.05 per sweep).
    """
    if sweeps < 1:
        raise UserError(f'sweeps must be at least 1, got {sweeps}')
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng)
    base = ray_directions(lidar)
    out = []
    for k in range(sweeps):
        turn = np.deg2rad(rng.uniform(0, lidar.azimuth_step_deg))  # this sweep's firings
        c, s = np.cos(turn), np.sin(turn)
        d = base @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])
        pts = simulate_sweep(scene, lidar, rng, d).points
        lag = np.full((len(pts), 1), 0.05 * k, np.float32)
        out.append(np.concatenate([pts, lag], 1))
    return np.concatenate(out).astype(np.float32)
