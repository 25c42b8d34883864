"""Random driving scenes for the embedded synthetic LiDAR benchmark.

A scene is a smooth terrain plus oriented boxes ("primitives"): labelled objects (Car,
Pedestrian, Cyclist) are built from a few primitives each so that their point clouds look
like the class, and unlabelled clutter (walls, poles, bushes, trees) adds hard negatives.
All coordinates are in the LiDAR frame (x forward, y left, z up, sensor at the origin).
"""
from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import numpy as np

# KITTI-like size statistics (mean, std) of (length, width, height) in metres.
CLASS_SIZES = {
    'Car': ((3.88, 1.63, 1.53), (0.25, 0.07, 0.07)),
    'Pedestrian': ((0.84, 0.66, 1.76), (0.10, 0.06, 0.08)),
    'Cyclist': ((1.76, 0.60, 1.74), (0.12, 0.05, 0.06)),
}
# Surface reflectivity per class, used for the simulated intensity channel.
REFLECTIVITY = {'Car': 0.55, 'Pedestrian': 0.3, 'Cyclist': 0.4, 'wall': 0.25,
                'pole': 0.45, 'vegetation': 0.12, 'ground': 0.18}
SENSOR_HEIGHT = 1.73


@dataclass
class Terrain:
    """Ground height z = base + sum_k a_k sin(kx x + ky y + phase_k): gentle relief."""
    base: float
    amps: np.ndarray
    freqs: np.ndarray  # (K, 2)
    phases: np.ndarray

    def height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        arg = np.multiply.outer(x, self.freqs[:, 0]) + np.multiply.outer(
            y, self.freqs[:, 1]) + self.phases
        return self.base + (np.sin(arg) * self.amps).sum(-1)

    def gradient(self, x: np.ndarray, y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        arg = np.multiply.outer(x, self.freqs[:, 0]) + np.multiply.outer(
            y, self.freqs[:, 1]) + self.phases
        c = np.cos(arg) * self.amps
        return (c * self.freqs[:, 0]).sum(-1), (c * self.freqs[:, 1]).sum(-1)


@dataclass
class Primitives:
    """Oriented boxes that rays can hit; owner is the labelled object index or -1."""
    centers: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    half_sizes: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    yaws: np.ndarray = field(default_factory=lambda: np.zeros(0))
    reflectivity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    owners: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def add(self, center, size, yaw, reflectivity, owner=-1):
        self.centers = np.vstack([self.centers, np.asarray(center, float)[None]])
        self.half_sizes = np.vstack(
            [self.half_sizes, 0.5 * np.asarray(size, float)[None]])
        self.yaws = np.append(self.yaws, float(yaw))
        self.reflectivity = np.append(self.reflectivity, float(reflectivity))
        self.owners = np.append(self.owners, int(owner))

    def __len__(self):
        return len(self.yaws)


@dataclass
class SceneObject:
    """A labelled object: class name and LiDAR box (x, y, z_bottom, l, w, h, yaw)."""
    name: str
    box: np.ndarray


@dataclass
class Scene:
    terrain: Terrain
    primitives: Primitives
    objects: List[SceneObject]


@dataclass
class SceneConfig:
    """Where and how many things are placed; the range matches the demo point range."""
    point_cloud_range: Sequence[float] = (0, -25.6, -3, 51.2, 25.6, 1)
    half_fov_deg: float = 38.0  # objects are placed inside the camera's field of view
    num_cars: Tuple[int, int] = (6, 14)
    num_pedestrians: Tuple[int, int] = (3, 8)
    num_cyclists: Tuple[int, int] = (2, 5)
    num_poles: Tuple[int, int] = (2, 8)
    num_bushes: Tuple[int, int] = (2, 6)
    num_trees: Tuple[int, int] = (1, 4)
    num_walls: Tuple[int, int] = (0, 3)
    relief: float = 0.12  # amplitude scale of the terrain, metres


def _rotate(xy: np.ndarray, yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return xy @ np.array([[c, s], [-s, c]])


def sample_terrain(rng: np.random.Generator, relief: float) -> Terrain:
    k = 4
    wavelengths = rng.uniform(15.0, 60.0, k)
    angles = rng.uniform(0, np.pi, k)
    freqs = np.stack([np.cos(angles), np.sin(angles)], -1) * (2 * np.pi / wavelengths)[:, None]
    return Terrain(base=-SENSOR_HEIGHT + rng.normal(0, 0.03),
                   amps=rng.uniform(0.2, 1.0, k) * relief,
                   freqs=freqs,
                   phases=rng.uniform(0, 2 * np.pi, k))


def _sample_size(rng, name):
    mean, std = CLASS_SIZES[name]
    lo = np.array(mean) * 0.7
    return np.maximum(rng.normal(mean, std), lo)


def _object_parts(name: str, l: float, w: float, h: float, rng) -> List[Tuple]:  # noqa: E741
    """Parts in the object frame: (centre xyz, size lwh) so clouds look class-like.

    Parts stay a few centimetres inside the label box, as annotators draw boxes around the
    visible surface (and range noise would otherwise push half the returns outside)."""
    l, w, h = l - 0.12, w - 0.1, h - 0.05
    if name == 'Car':
        cab_l = l * rng.uniform(0.45, 0.6)
        return [((0, 0, 0.1 * h), (0.8 * l, 0.9 * w, 0.16 * h)),        # wheels/skirt
                ((0, 0, 0.4 * h), (l, w, 0.44 * h)),                    # body
                ((-0.08 * l, 0, 0.81 * h), (cab_l, 0.92 * w, 0.38 * h))]  # cabin
    if name == 'Pedestrian':
        return [((0, 0, 0.21 * h), (0.45 * l, 0.55 * w, 0.42 * h)),     # legs
                ((0, 0, 0.6 * h), (0.5 * l, 0.85 * w, 0.36 * h)),       # torso
                ((0, 0, 0.89 * h), (0.3 * l, 0.35 * w, 0.22 * h))]      # head
    if name == 'Cyclist':
        return [((0, 0, 0.27 * h), (l, 0.2 * w, 0.54 * h)),             # bicycle
                ((-0.1 * l, 0, 0.72 * h), (0.4 * l, 0.8 * w, 0.5 * h))]  # rider
    raise KeyError(name)


class _Placer:
    """Rejection sampling of non-overlapping BEV discs inside the range and the FOV."""

    def __init__(self, rng, cfg: SceneConfig):
        self.rng, self.cfg = rng, cfg
        self.discs: List[Tuple[float, float, float]] = [(0.0, 0.0, 3.0)]  # ego

    def place(self, radius: float, inside_fov: bool = True, margin: float = 1.0):
        x0, y0, _, x1, y1, _ = self.cfg.point_cloud_range
        tan_fov = np.tan(np.deg2rad(self.cfg.half_fov_deg))
        for _ in range(200):
            x = self.rng.uniform(max(x0, 0) + 4.0, x1 - radius - margin)
            y = self.rng.uniform(y0 + radius + margin, y1 - radius - margin)
            if inside_fov and abs(y) > x * tan_fov - radius:
                continue
            if all((x - cx) ** 2 + (y - cy) ** 2 > (radius + r + 0.3) ** 2
                   for cx, cy, r in self.discs):
                self.discs.append((x, y, radius))
                return x, y
        return None


def sample_scene(rng: np.random.Generator, cfg: SceneConfig = SceneConfig()) -> Scene:
    """Draw one scene: terrain, labelled objects and clutter."""
    terrain = sample_terrain(rng, cfg.relief)
    prims = Primitives()
    objects: List[SceneObject] = []
    placer = _Placer(rng, cfg)
    road_yaw = rng.normal(0, 0.05)

    def n(rng_range):
        return int(rng.integers(rng_range[0], rng_range[1] + 1))

    plan = ['Car'] * n(cfg.num_cars) + ['Cyclist'] * n(cfg.num_cyclists) + \
        ['Pedestrian'] * n(cfg.num_pedestrians)
    for name in plan:
        l, w, h = _sample_size(rng, name)
        pos = placer.place(0.5 * np.hypot(l, w))
        if pos is None:
            continue
        x, y = pos
        if name == 'Pedestrian' or rng.random() < 0.15:
            yaw = rng.uniform(-np.pi, np.pi)
        else:  # vehicles mostly follow the road, either direction
            yaw = road_yaw + (np.pi if rng.random() < 0.5 else 0.0) + rng.normal(0, 0.08)
        yaw = (yaw + np.pi) % (2 * np.pi) - np.pi
        z = float(terrain.height(np.array(x), np.array(y)))
        owner = len(objects)
        objects.append(SceneObject(name, np.array([x, y, z, l, w, h, yaw])))
        refl = REFLECTIVITY[name] * rng.uniform(0.7, 1.3)
        for (px, py, pz), size in _object_parts(name, l, w, h, rng):
            dx, dy = _rotate(np.array([[px, py]]), yaw)[0]
            prims.add((x + dx, y + dy, z + pz), size, yaw, refl, owner)

    _add_clutter(rng, cfg, terrain, prims, placer, n)
    return Scene(terrain, prims, objects)


def _add_clutter(rng, cfg, terrain, prims, placer, n):
    """Unlabelled structures: poles, bushes, trees and walls."""
    def ground(x, y):
        return float(terrain.height(np.array(x), np.array(y)))

    for _ in range(n(cfg.num_poles)):
        pos = placer.place(0.3, inside_fov=False)
        if pos:
            t, hgt = rng.uniform(0.12, 0.3), rng.uniform(2.5, 6.0)
            prims.add((*pos, ground(*pos) + hgt / 2), (t, t, hgt), rng.uniform(0, np.pi),
                      REFLECTIVITY['pole'])
    for _ in range(n(cfg.num_bushes)):
        pos = placer.place(1.5, inside_fov=False)
        if pos:
            for _ in range(int(rng.integers(4, 10))):
                s = rng.uniform(0.3, 1.0, 3)
                cx, cy = np.array(pos) + rng.normal(0, 0.6, 2)
                prims.add((cx, cy, ground(cx, cy) + s[2] / 2 + rng.uniform(0, 0.6)), s,
                          rng.uniform(0, np.pi), REFLECTIVITY['vegetation'])
    for _ in range(n(cfg.num_trees)):
        pos = placer.place(2.0, inside_fov=False)
        if pos:
            trunk = rng.uniform(2.0, 3.5)
            prims.add((*pos, ground(*pos) + trunk / 2), (0.35, 0.35, trunk), 0.0,
                      REFLECTIVITY['vegetation'])
            for _ in range(int(rng.integers(4, 9))):
                s = rng.uniform(0.6, 1.6, 3)
                cx, cy = np.array(pos) + rng.normal(0, 0.8, 2)
                prims.add((cx, cy, ground(*pos) + trunk + rng.uniform(0, 1.5)), s,
                          rng.uniform(0, np.pi), REFLECTIVITY['vegetation'])
    x0, y0, _, x1, y1, _ = cfg.point_cloud_range
    for _ in range(n(cfg.num_walls)):
        side = rng.choice([-1.0, 1.0])
        y = side * rng.uniform(0.55, 0.95) * (y1 if side > 0 else -y0)
        xa = rng.uniform(x0 + 5, x1 - 10)
        length = rng.uniform(6, 25)
        thick, hgt = rng.uniform(0.3, 3.0), rng.uniform(1.5, 6.0)
        cx = xa + length / 2
        if any(abs(y - py) < r + thick and xa - r < px < xa + length + r
               for px, py, r in placer.discs[1:]):
            continue  # would bury an object
        placer.discs.append((cx, y, 0.5 * max(length, thick)))
        prims.add((cx, y, ground(cx, y) + hgt / 2 - 0.2), (length, thick, hgt + 0.4),
                  rng.normal(0, 0.03), REFLECTIVITY['wall'])
