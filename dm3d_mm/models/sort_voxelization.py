"""Hard voxelization without a dense grid: mmcv's CPU result, by sorting the points.

mmcv's CPU ``hard_voxelize`` allocates and fills an int32 index grid of the whole voxel
grid for every frame (41 x 512 x 512 = 43 MB for the demo SECOND) to map a voxel to its
slot; filling it is most of the voxelization time, and a fixed cost no pruning can touch
(about a quarter of the demo SECOND's CPU forward). Here the same map comes from sorting the
linear voxel indices of the in-range points: O(N log N) in the number of points, nothing in
the grid size.

The result is mmcv's exactly: the same point -> voxel coordinates (mmcv's own compiled
``dynamic_voxelize``), voxels in the order of their first point, the points of a voxel in
input order, at most ``max_num_points`` per voxel and ``max_voxels`` voxels (the points of
later voxels dropped). On CUDA the layer runs mmcv's kernel unchanged (it has no grid) when
mmcv was built with its CUDA kernels; with an mmcv built without them (this project's CPU
install carried to a GPU) the sort runs in torch on the GPU, the voxel coordinates too
(:func:`voxel_coordinates`), and :func:`patch_grid_voxelization_for_cuda` gives mmdet3d's
own voxelization layer the same path for CUDA points.
"""
import torch
from mmcv.ops.voxelize import ext_module
from mmdet3d.models.data_preprocessors import Det3DDataPreprocessor
from mmdet3d.models.data_preprocessors.voxelize import VoxelizationByGridShape
from mmdet3d.registry import MODELS

from ..compat.mmcv_cuda_ops import cuda_without_mmcv_kernels, mmcv_has_cuda_ops


def voxel_coordinates(points: torch.Tensor, voxel_size, point_cloud_range) -> torch.Tensor:
    """(N, 3) int32 (z, y, x) voxel coordinates of ``points``, -1 rows out of range: mmcv's
    compiled dynamic voxelization for CPU points, :func:`torch_voxel_coordinates` (the same
    float32 arithmetic, tested equal) for CUDA points."""
    if points.is_cuda:
        return torch_voxel_coordinates(points, voxel_size, point_cloud_range)
    coors = points.new_zeros((points.size(0), 3), dtype=torch.int)
    ext_module.dynamic_voxelize_forward(
        points.contiguous(), torch.tensor(voxel_size, dtype=torch.float),
        torch.tensor(point_cloud_range, dtype=torch.float), coors, NDim=3)
    return coors


def torch_voxel_coordinates(points: torch.Tensor, voxel_size,
                            point_cloud_range) -> torch.Tensor:
    """mmcv's dynamic voxelization in torch, on any device: per axis
    ``floor((p - range_min) / voxel_size)`` in float32, the grid size rounded from float32
    too, and a point outside the grid on any axis gets -1 on every axis.

    Args:
        points (Tensor): (N, >= 3) points.
        voxel_size (Sequence[float]): [x, y, z] voxel size.
        point_cloud_range (Sequence[float]): [x_min, y_min, z_min, x_max, y_max, z_max].

    Returns:
        Tensor: (N, 3) int32 (z, y, x) coordinates.
    """
    rng = torch.tensor(point_cloud_range, dtype=torch.float, device=points.device)
    size = torch.tensor(voxel_size, dtype=torch.float, device=points.device)
    grid = torch.round((rng[3:] - rng[:3]) / size)
    c = torch.floor((points[:, :3].float() - rng[:3]) / size)
    outside = ((c < 0) | (c >= grid)).any(1)
    c = c.int().flip(1)
    c[outside] = -1
    return c


def sort_hard_voxelize(points: torch.Tensor, coors: torch.Tensor, grid_shape,
                       max_points: int, max_voxels: int):
    """mmcv's hard voxelization from per-point coordinates, by sorting.

    Args:
        points (Tensor): (N, C) points.
        coors (Tensor): (N, 3) int (z, y, x) coordinates, a negative entry = out of range.
        grid_shape (Sequence[int]): (X, Y, Z) voxels along each axis.
        max_points (int): points kept per voxel (the first in input order).
        max_voxels (int): voxels kept (the first by their first point); -1 for no limit.

    Returns:
        tuple[Tensor]: voxels (M, max_points, C), coors (M, 3) int32 (z, y, x), and
        num_points (M,) int32.
    """
    nx, ny, _ = grid_shape
    inside = torch.nonzero(coors[:, 0] >= 0).squeeze(1)
    c = coors[inside].long()
    linear = (c[:, 0] * ny + c[:, 1]) * nx + c[:, 2]
    uniq, inverse = torch.unique(linear, return_inverse=True)
    order = torch.arange(len(inside), device=points.device)
    first = torch.full((len(uniq), ), len(inside), dtype=torch.long, device=points.device)
    first.scatter_reduce_(0, inverse, order, reduce='amin')
    by_first = torch.argsort(first)  # voxel slots in the order of their first point
    slot = torch.empty_like(by_first)
    slot[by_first] = torch.arange(len(uniq), device=points.device)
    num_voxels = len(uniq) if max_voxels < 0 else min(len(uniq), max_voxels)
    point_slot = slot[inverse]
    kept = point_slot < num_voxels
    point_slot, rows = point_slot[kept], inside[kept]
    point_slot, perm = torch.sort(point_slot, stable=True)  # input order within a slot
    rows = rows[perm]
    counts = torch.bincount(point_slot, minlength=num_voxels)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(rows), device=points.device) - start[point_slot]
    fits = rank < max_points
    voxels = points.new_zeros((num_voxels, max_points, points.size(1)))
    voxels[point_slot[fits], rank[fits]] = points[rows[fits]]
    voxel_coors = coors[inside[first[by_first[:num_voxels]]]]
    return voxels, voxel_coors, counts.clamp(max=max_points).int()


class SortVoxelization(VoxelizationByGridShape):
    """mmdet3d's ``VoxelizationByGridShape`` (same arguments and outputs) whose CPU hard
    voxelization sorts the points instead of filling a grid-sized index map.

    Args:
        point_cloud_range (list[float]): [x_min, y_min, z_min, x_max, y_max, z_max].
        max_num_points (int): Points kept per voxel; -1 = dynamic voxelization (mmcv's).
        voxel_size (list[float]): Voxel size [x, y, z]. Defaults to [].
        grid_shape (list[int]): Grid shape instead of ``voxel_size``. Defaults to [].
        max_voxels (tuple[int] | int): Voxels kept in (training, testing).
            Defaults to 20000.
        deterministic (bool): Passed to mmcv's CUDA kernel. Defaults to True.
    """

    def forward(self, points: torch.Tensor):
        max_voxels = self.max_voxels[0] if self.training else self.max_voxels[1]
        in_torch = points.is_cuda and not mmcv_has_cuda_ops()  # no mmcv kernel for it
        if not in_torch and (points.is_cuda or self.max_num_points == -1 or max_voxels == -1):
            return super().forward(points)
        coors = voxel_coordinates(points, self.voxel_size, self.point_cloud_range)
        if self.max_num_points == -1:  # dynamic voxelization: the coordinates
            return coors
        grid = [round((self.point_cloud_range[i + 3] - self.point_cloud_range[i])
                      / self.voxel_size[i]) for i in range(3)]
        return sort_hard_voxelize(points, coors, grid, self.max_num_points, max_voxels)


@MODELS.register_module()
class SortVoxelDataPreprocessor(Det3DDataPreprocessor):
    """mmdet3d's ``Det3DDataPreprocessor`` with :class:`SortVoxelization` as its hard
    voxelization layer: the same outputs, no per-frame grid fill on CPU. Same arguments
    (``voxel_layer`` as mmdet3d's); select with ``data_preprocessor.type``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.voxel and self.voxel_type == 'hard':
            self.voxel_layer = SortVoxelization(**kwargs['voxel_layer'])


def _grid_voxelization_forward(forward):
    def wrapper(self, points: torch.Tensor):
        if points.is_cuda:
            return SortVoxelization.forward(self, points)
        return forward(self, points)
    wrapper.dm3d_torch_on_cuda = True
    return wrapper


def patch_grid_voxelization_for_cuda() -> bool:
    """With CUDA and an mmcv without CUDA kernels, make mmdet3d's ``VoxelizationByGridShape``
    voxelize CUDA points as :class:`SortVoxelization` does (in torch, the same voxels); CPU
    points keep mmcv's kernel. Idempotent; returns whether the patch is active."""
    if not cuda_without_mmcv_kernels():
        return False
    if not getattr(VoxelizationByGridShape.forward, 'dm3d_torch_on_cuda', False):
        VoxelizationByGridShape.forward = _grid_voxelization_forward(
            VoxelizationByGridShape.forward)
    return True


patch_grid_voxelization_for_cuda()


def use_sort_voxelization(model) -> bool:
    """Swap a built detector's hard voxelization layer for :class:`SortVoxelization` in
    place (same arguments, same outputs); returns whether the model had one."""
    layer = getattr(model.data_preprocessor, 'voxel_layer', None)
    if type(layer) is not VoxelizationByGridShape:
        return isinstance(layer, SortVoxelization)
    layer.__class__ = SortVoxelization
    return True
