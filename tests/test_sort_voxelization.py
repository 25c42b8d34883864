"""SortVoxelization returns mmcv's hard voxelization exactly, without the grid fill."""
import pytest
import torch
from mmdet3d.models.data_preprocessors import Det3DDataPreprocessor
from mmdet3d.models.data_preprocessors.voxelize import VoxelizationByGridShape
from mmdet3d.registry import MODELS

from dm3d_mm.models import SortVoxelization, use_sort_voxelization

RANGE = [0, -6.4, -3, 12.8, 6.4, 1]


def cloud(n, seed):
    """Points spread over and beyond RANGE (some out of range on every axis), with clusters
    that put more than max_num_points points into single voxels."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = torch.tensor(RANGE[:3]), torch.tensor(RANGE[3:])
    pts = torch.rand(n, 3, generator=g) * (hi - lo) * 1.2 + lo - 0.1 * (hi - lo)
    cluster = pts[:n // 10].repeat(4, 1) + 0.01 * torch.rand(4 * (n // 10), 3, generator=g)
    xyz = torch.cat([pts, cluster])[torch.randperm(n + 4 * (n // 10), generator=g)]
    return torch.cat([xyz, torch.rand(len(xyz), 1, generator=g)], 1)


@pytest.mark.parametrize('max_voxels', [(20000, 20000), (300, 150), (-1, -1)])
@pytest.mark.parametrize('training', [True, False])
def test_equals_mmcv(max_voxels, training):
    kw = dict(point_cloud_range=RANGE, voxel_size=[0.2, 0.2, 0.2], max_num_points=5,
              max_voxels=max_voxels)
    ref, ours = VoxelizationByGridShape(**kw), SortVoxelization(**kw)
    ref.train(training), ours.train(training)
    for seed in range(3):
        pts = cloud(3000, seed)
        expected, got = ref(pts), ours(pts)
        if max_voxels[0] == -1:  # dynamic voxelization: mmcv's own path
            assert torch.equal(expected, got)
            continue
        if max_voxels[0] == 300:  # the cap of the mode binds
            assert len(expected[0]) == max_voxels[0 if training else 1]
        assert (expected[2] == 5).any()  # the clusters overflow max_num_points
        for e, g in zip(expected, got):
            assert e.dtype == g.dtype and torch.equal(e, g)


def test_empty_and_out_of_range_clouds():
    kw = dict(point_cloud_range=RANGE, voxel_size=[0.2, 0.2, 0.2], max_num_points=5,
              max_voxels=100)
    ours = SortVoxelization(**kw)
    for pts in (torch.zeros(0, 4), torch.full((10, 4), 100.0)):
        voxels, coors, num = ours(pts)
        assert voxels.shape == (0, 5, 4) and coors.shape == (0, 3) and num.shape == (0, )
        assert coors.dtype == torch.int32 and num.dtype == torch.int32


def test_data_preprocessor_and_swap():
    """The registered preprocessor (and a swapped built one) gives mmdet3d's voxel dict."""
    voxel_layer = dict(point_cloud_range=RANGE, voxel_size=[0.2, 0.2, 0.2], max_num_points=5,
                       max_voxels=(1000, 1000))
    ref = Det3DDataPreprocessor(voxel=True, voxel_layer=voxel_layer)
    ours = MODELS.build(dict(type='SortVoxelDataPreprocessor', voxel=True,
                             voxel_layer=voxel_layer))
    assert type(ours.voxel_layer) is SortVoxelization
    batch = dict(inputs=dict(points=[cloud(2000, 0), cloud(1500, 1)]), data_samples=None)
    expected = ref(batch, False)['inputs']['voxels']
    got = ours(batch, False)['inputs']['voxels']
    assert expected.keys() == got.keys()
    for k in expected:
        assert torch.equal(expected[k], got[k]), k

    class Detector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.data_preprocessor = Det3DDataPreprocessor(voxel=True, voxel_layer=voxel_layer)

    det = Detector()
    assert use_sort_voxelization(det) and type(det.data_preprocessor.voxel_layer) is \
        SortVoxelization
    got = det.data_preprocessor(batch, False)['inputs']['voxels']
    for k in expected:
        assert torch.equal(expected[k], got[k]), k


def test_torch_coordinates_equal_mmcv():
    """The torch coordinates (the CUDA path when mmcv has no CUDA kernels) are mmcv's
    compiled dynamic voxelization exactly, points on voxel and range borders included; the
    sort from them gives mmcv's hard voxels."""
    from dm3d_mm.models.sort_voxelization import (
        sort_hard_voxelize,
        torch_voxel_coordinates,
        voxel_coordinates,
    )
    size = [0.2, 0.2, 0.2]
    borders = torch.tensor([[0.0, -6.4, -3.0, 0.5], [12.8, 6.4, 1.0, 0.5], [0.2, 0.0, -2.8, 0],
                            [12.79999, 6.39999, 0.99999, 0], [-1e-6, 0, 0, 0], [6.0, 0.6, 0.4, 0]])
    ref = VoxelizationByGridShape(point_cloud_range=RANGE, voxel_size=size, max_num_points=5,
                                  max_voxels=(20000, 20000)).eval()
    for seed in range(3):
        pts = torch.cat([cloud(3000, seed), borders])
        coors = torch_voxel_coordinates(pts, size, RANGE)
        assert coors.dtype == torch.int32 and torch.equal(coors, voxel_coordinates(pts, size,
                                                                                   RANGE))
        assert (coors[:, 0] == -1).any() and (coors[:, 0] >= 0).any()
        got = sort_hard_voxelize(pts, coors, [64, 64, 20], 5, 20000)
        for e, g in zip(ref(pts), got):
            assert torch.equal(e, g)


def test_a_bench_config_voxelizes_by_sort_wherever_it_is_built():
    """``voxelizer_into_config(cfg, 'sort')`` makes every detector built from the config
    (a slim export's config derived from it too) voxelize by sorting, mmcv's voxels;
    'mmcv' leaves it as it is and an unknown name is an error."""
    from mmengine.config import Config

    from dm3d_mm.studies.wall_time import voxelizer_into_config
    voxel_layer = dict(point_cloud_range=RANGE, voxel_size=[0.2, 0.2, 0.2], max_num_points=5,
                       max_voxels=(1000, 1000))
    cfg = Config(dict(model=dict(data_preprocessor=dict(
        type='Det3DDataPreprocessor', voxel=True, voxel_layer=voxel_layer))))
    assert voxelizer_into_config(cfg.copy(), 'mmcv').model.data_preprocessor.type == \
        'Det3DDataPreprocessor'
    built = MODELS.build(voxelizer_into_config(cfg, 'sort').model.data_preprocessor)
    assert type(built.voxel_layer) is SortVoxelization
    batch = dict(inputs=dict(points=[cloud(2000, 3)]), data_samples=None)
    ref = Det3DDataPreprocessor(voxel=True, voxel_layer=voxel_layer)(batch, False)
    got = built(batch, False)
    for k, v in ref['inputs']['voxels'].items():
        assert torch.equal(v, got['inputs']['voxels'][k]), k
    with pytest.raises(ValueError, match='voxelizer'):
        voxelizer_into_config(cfg, 'grid')
