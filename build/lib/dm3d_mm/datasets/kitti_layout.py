"""KITTI-layout files for synthetic frames: calib, labels, velodyne bins, v2 info pkls and a
ground-truth database, so mmdet3d's KittiDataset, ObjectSample and KittiMetric use them as is.
"""
import os
import os.path as osp
from typing import Dict, List

import numpy as np

from .lidar_sim import LidarReturn
from .synthetic_scene import Scene

# mmdet3d's KITTI category ids (KittiDataset.METAINFO order).
KITTI_CATEGORIES = {'Pedestrian': 0, 'Cyclist': 1, 'Car': 2, 'Van': 3, 'Truck': 4,
                    'Person_sitting': 5, 'Tram': 6, 'Misc': 7}
IMAGE_HW = (375, 1242)


def _h(m):
    out = np.eye(4)
    out[:m.shape[0], :m.shape[1]] = m
    return out


# A typical KITTI calibration (drive 2011_09_26): cameras P0..P3, rectification and
# velodyne->camera extrinsics. The synthetic sensor rig uses it unchanged.
CALIB = {
    'P0': _h(np.array([[721.5377, 0, 609.5593, 0], [0, 721.5377, 172.854, 0],
                       [0, 0, 1, 0]])),
    'P1': _h(np.array([[721.5377, 0, 609.5593, -387.5744], [0, 721.5377, 172.854, 0],
                       [0, 0, 1, 0]])),
    'P2': _h(np.array([[721.5377, 0, 609.5593, 44.85728],
                       [0, 721.5377, 172.854, 0.2163791], [0, 0, 1, 0.002745884]])),
    'P3': _h(np.array([[721.5377, 0, 609.5593, -339.5242],
                       [0, 721.5377, 172.854, 2.199936], [0, 0, 1, 0.002729905]])),
    'R0_rect': _h(np.array([[0.9999239, 0.00983776, -0.007445048],
                            [-0.009869795, 0.9999421, -0.004278459],
                            [0.007402527, 0.004351614, 0.9999631]])),
    'Tr_velo_to_cam': _h(np.array([[7.533745e-03, -9.999714e-01, -6.166020e-04, -4.069766e-03],
                                   [1.480249e-02, 7.280733e-04, -9.998902e-01, -7.631618e-02],
                                   [9.998621e-01, 7.523790e-03, 1.480755e-02, -2.717806e-01]])),
    'Tr_imu_to_velo': _h(np.array([[9.999976e-01, 7.553071e-04, -2.035826e-03, -8.086759e-01],
                                   [-7.854027e-04, 9.998898e-01, -1.482298e-02, 3.195559e-01],
                                   [2.024406e-03, 1.482454e-02, 9.998881e-01, -7.997231e-01]])),
}
LIDAR2CAM = CALIB['R0_rect'] @ CALIB['Tr_velo_to_cam']
LIDAR2IMG = CALIB['P2'] @ LIDAR2CAM


def project_to_image(xyz: np.ndarray):
    """Pixel coordinates (N, 2) and camera depth (N,) of LiDAR points in CAM2."""
    hom = np.concatenate([xyz, np.ones((len(xyz), 1))], 1) @ LIDAR2IMG.T
    depth = hom[:, 2]
    with np.errstate(divide='ignore', invalid='ignore'):
        uv = hom[:, :2] / depth[:, None]
    return uv, depth


def in_image(xyz: np.ndarray) -> np.ndarray:
    """Mask of points that CAM2 sees (what KITTI's velodyne_reduced keeps)."""
    uv, depth = project_to_image(xyz)
    h, w = IMAGE_HW
    return (depth > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)


def box_corners(box: np.ndarray) -> np.ndarray:
    """8 corners of a LiDAR box (x, y, z_bottom, l, w, h, yaw)."""
    x, y, z, l, w, h, yaw = box
    dx = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * l / 2
    dy = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * w / 2
    dz = np.array([0, 0, 0, 0, 1, 1, 1, 1]) * h
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([x + c * dx - s * dy, y + s * dx + c * dy, z + dz], -1)


def points_in_box(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Mask of points inside a LiDAR box (x, y, z_bottom, l, w, h, yaw)."""
    x, y, z, l, w, h, yaw = box
    p = points[:, :3] - np.array([x, y, z + h / 2])
    c, s = np.cos(yaw), np.sin(yaw)
    lx = c * p[:, 0] + s * p[:, 1]
    ly = -s * p[:, 0] + c * p[:, 1]
    return (np.abs(lx) <= l / 2) & (np.abs(ly) <= w / 2) & (np.abs(p[:, 2]) <= h / 2)


def lidar_box_to_camera(box: np.ndarray) -> np.ndarray:
    """KITTI camera box (x, y, z_bottom, l, h, w, ry) of a LiDAR box, as mmdet3d converts."""
    x, y, z, l, w, h, yaw = box
    loc = LIDAR2CAM @ np.array([x, y, z, 1.0])
    # mmdet3d's Box3DMode maps yaw without the extrinsics' small tilt: ry = -yaw - pi/2
    ry = (-yaw - np.pi / 2 + np.pi) % (2 * np.pi) - np.pi
    return np.array([loc[0], loc[1], loc[2], l, h, w, ry])


def kitti_difficulty(height: float, occluded: int, truncated: float) -> int:
    """KITTI easy (0) / moderate (1) / hard (2) / none (-1) from the official thresholds."""
    for level, (min_h, max_occ, max_trunc) in enumerate(
            [(40, 0, 0.15), (25, 1, 0.3), (25, 2, 0.5)]):
        if height > min_h and occluded <= max_occ and truncated <= max_trunc:
            return level
    return -1


def annotate(scene: Scene, ret: LidarReturn) -> List[Dict]:
    """KITTI-style annotations of the scene's objects that CAM2 sees."""
    annos = []
    hgt, wid = IMAGE_HW
    for j, obj in enumerate(scene.objects):
        corners = box_corners(obj.box)
        uv, depth = project_to_image(corners)
        if (depth <= 0.1).any():
            continue
        x1, y1 = uv.min(0)
        x2, y2 = uv.max(0)
        cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, wid - 1), min(y2, hgt - 1)
        if cx2 <= cx1 or cy2 <= cy1:
            continue
        truncated = float(np.clip(
            1 - (cx2 - cx1) * (cy2 - cy1) / ((x2 - x1) * (y2 - y1)), 0, 1))
        seen = int((ret.owner == j).sum())
        visible = seen / max(int(ret.rays_on_object[j]), 1)
        occluded = 0 if visible >= 0.75 else 1 if visible >= 0.35 else 2 if seen > 0 else 3
        cam = lidar_box_to_camera(obj.box)
        gravity = obj.box[:3] + np.array([0, 0, obj.box[5] / 2])
        center_uv, _ = project_to_image(gravity[None])
        alpha = cam[6] + np.arctan2(obj.box[1], obj.box[0])
        alpha = (alpha + np.pi) % (2 * np.pi) - np.pi
        annos.append(dict(
            name=obj.name, lidar_box=obj.box.astype(np.float32),
            bbox=[float(cx1), float(cy1), float(cx2), float(cy2)],
            bbox_3d=[float(v) for v in cam], depth=float(cam[2]),
            center_2d=[float(v) for v in center_uv[0]],
            num_lidar_pts=int(points_in_box(ret.points, obj.box).sum()),
            truncated=truncated, occluded=occluded, alpha=float(alpha),
            difficulty=kitti_difficulty(cy2 - cy1, occluded, truncated)))
    return annos


def _m(m):
    return [[float(v) for v in row] for row in m]


def frame_info(idx: int, annos: List[Dict]) -> Dict:
    """One data_list entry of an mmdet3d v2 KITTI info file."""
    images = {}
    for k in range(4):
        p = CALIB[f'P{k}']
        images[f'CAM{k}'] = dict(img_path=f'{idx:06d}.png', height=IMAGE_HW[0],
                                 width=IMAGE_HW[1], cam2img=_m(p), lidar2cam=_m(LIDAR2CAM),
                                 lidar2img=_m(p @ LIDAR2CAM))
    images['R0_rect'] = _m(CALIB['R0_rect'])
    instances = []
    for i, a in enumerate(annos):
        label = KITTI_CATEGORIES[a['name']]
        instances.append(dict(
            bbox=a['bbox'], bbox_label=label, bbox_3d=a['bbox_3d'], bbox_label_3d=label,
            depth=a['depth'], center_2d=a['center_2d'], num_lidar_pts=a['num_lidar_pts'],
            difficulty=a['difficulty'], truncated=a['truncated'], occluded=a['occluded'],
            alpha=a['alpha'], score=0.0, index=i, group_id=i))
    return dict(
        sample_idx=idx, images=images,
        lidar_points=dict(num_pts_feats=4, lidar_path=f'{idx:06d}.bin',
                          Tr_velo_to_cam=_m(CALIB['Tr_velo_to_cam']),
                          Tr_imu_to_velo=_m(CALIB['Tr_imu_to_velo'])),
        instances=instances)


def info_file(data_list: List[Dict]) -> Dict:
    return dict(metainfo=dict(categories=dict(KITTI_CATEGORIES), dataset='kitti',
                              info_version='1.1'),
                data_list=data_list)


def write_calib(path: str):
    lines = [f'P{k}: ' + ' '.join(f'{v:.12e}' for v in CALIB[f'P{k}'][:3].ravel())
             for k in range(4)]
    lines.append('R0_rect: ' + ' '.join(f'{v:.12e}' for v in CALIB['R0_rect'][:3, :3].ravel()))
    for key in ('Tr_velo_to_cam', 'Tr_imu_to_velo'):
        lines.append(f'{key}: ' + ' '.join(f'{v:.12e}' for v in CALIB[key][:3].ravel()))
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def write_label(path: str, annos: List[Dict]):
    with open(path, 'w') as f:
        for a in annos:
            x, y, z, l, h, w, ry = a['bbox_3d']
            f.write(f"{a['name']} {a['truncated']:.2f} {a['occluded']} {a['alpha']:.2f} "
                    + ' '.join(f'{v:.2f}' for v in a['bbox'])
                    + f' {h:.2f} {w:.2f} {l:.2f} {x:.2f} {y:.2f} {z:.2f} {ry:.2f}\n')


def write_gt_database(root: str, idx: int, points: np.ndarray, annos: List[Dict],
                      first_group_id: int) -> List[Dict]:
    """Save each object's points (relative to its box) as mmdet3d's GT database does."""
    db_dir = osp.join(root, 'kitti_gt_database')
    os.makedirs(db_dir, exist_ok=True)
    infos = []
    for i, a in enumerate(annos):
        box = a['lidar_box']
        mask = points_in_box(points, box)
        obj_pts = points[mask].copy()
        obj_pts[:, :3] -= box[:3]
        rel = f'kitti_gt_database/{idx}_{a["name"]}_{i}.bin'
        obj_pts.astype(np.float32).tofile(osp.join(root, rel))
        infos.append(dict(name=a['name'], path=rel, image_idx=idx, gt_idx=i,
                          box3d_lidar=box.astype(np.float32),
                          num_points_in_gt=int(mask.sum()), difficulty=a['difficulty'],
                          group_id=first_group_id + i, score=0.0))
    return infos
