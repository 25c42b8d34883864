"""SPSS with a supervised 'foreground' voxel ranking (SPSSVoxelNet): the in-box labels, the
loss that trains the scorers, and the pruning they drive, on the demo SECOND."""
import pytest
import torch
from conftest import REPO

import dm3d_mm  # noqa: F401
from dm3d_mm.spatial import SPSSVoxelNet, points_in_boxes, voxel_centres

FG = f'{REPO}/configs/demo/second_synth-kitti_cpu_spss50_fg.py'


def test_points_in_boxes_matches_mmcv():
    from mmcv.ops import points_in_boxes_cpu
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(4000, 3, generator=g) * torch.tensor([20., 20., 4.]) - \
        torch.tensor([0., 10., 2.])
    boxes = torch.tensor([[5., 0., -1., 4., 2., 1.5, 0.3], [12., -4., -1.5, 1., 1., 2., -1.2],
                          [8., 5., -2., 3., 3., 3., 2.0]])
    ref = points_in_boxes_cpu(pts[None], boxes[None])[0].any(1)
    ours = points_in_boxes(pts, boxes, torch.zeros(3))
    # mmcv's test is strict at the faces, ours inclusive: only points on a face may differ
    assert (ours != ref.bool()).sum() == 0 and ref.sum() > 20
    # a margin grows every box: a point just outside one face falls inside
    outside = torch.tensor([[5., 1.05, -0.5]])  # 5 cm beyond the +y face of box 0
    assert not points_in_boxes(outside, boxes[:1], torch.zeros(3))[0]
    assert points_in_boxes(outside, boxes[:1], torch.full((3, ), 0.1))[0]


def test_voxel_centres_at_full_and_strided_resolution():
    idx = torch.tensor([[0, 0, 0, 0], [0, 2, 3, 5]], dtype=torch.int32)  # b, z, y, x
    pcr, vs = [0, -25.6, -3, 51.2, 25.6, 1], [0.1, 0.1, 0.1]
    c, cell = voxel_centres(idx, [41, 512, 512], [41, 512, 512], pcr, vs)
    assert torch.allclose(c[1], torch.tensor([0.55, -25.25, -2.75]), atol=1e-5)
    c8, cell8 = voxel_centres(idx, [5, 64, 64], [41, 512, 512], pcr, vs)
    assert torch.allclose(cell8, torch.tensor([0.8, 0.8, 0.8]))
    assert torch.allclose(c8[1], torch.tensor([0.05 + 5 * 0.8, -25.55 + 3 * 0.8,
                                               -2.95 + 2 * 0.8]), atol=1e-5)


@pytest.fixture(scope='module')
def fg_setup(synth_root):
    from mmdet3d.registry import DATASETS, MODELS
    from mmengine.dataset import pseudo_collate
    from mmengine.runner import set_random_seed

    from dm3d_mm.apis import load_config
    set_random_seed(0)  # the weights and the augmented frames (object sampling, noise, flip)
    cfg = load_config(FG, data_root=synth_root)
    model = MODELS.build(cfg.model)  # with its train_cfg
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    return cfg, model, pseudo_collate([ds[0], ds[1]])


def test_foreground_loss_trains_every_scorer_and_labels_object_voxels(fg_setup):
    cfg, model, batch = fg_setup
    assert isinstance(model, SPSSVoxelNet)
    scorers = model.foreground_scorers()
    assert len(scorers) >= 4  # every pruned conv of every stage
    torch.manual_seed(0)
    model.train()
    data = model.data_preprocessor(batch, True)
    boxes = model.gt_boxes(data['data_samples'])
    model.zero_grad()
    losses = model.loss(data['inputs'], data['data_samples'])
    assert torch.isfinite(losses['loss_voxel_fg']) and losses['loss_voxel_fg'] > 0
    # the labels the loss saw: some voxels of every level lie in boxes, most do not
    model.middle_encoder(*_encoder_inputs(model, data))
    fractions = [float(model.foreground_labels(s, boxes).float().mean())
                 for s in scorers]
    assert all(0.01 < f < 0.6 for f in fractions), fractions
    # a margin labels the objects' surroundings too: a strict superset of the labels
    plain = [model.foreground_labels(s, boxes) for s in scorers]
    model.foreground_loss['margin'] = 0.3
    try:
        grown = [model.foreground_labels(s, boxes) for s in scorers]
    finally:
        model.foreground_loss['margin'] = 0.0
    for a, b in zip(plain, grown):
        assert bool((b | a).eq(b).all()) and int(b.sum()) > int(a.sum())
    total, _ = model.parse_losses(losses)
    total.backward()
    for s in scorers:
        assert s.linear.weight.grad is not None and s.linear.weight.grad.abs().sum() > 0


def test_foreground_scores_choose_the_kept_voxels(fg_setup):
    """The scorer's ranking is what the pruning keeps: once the first scorer is fitted to
    its labels, its layer keeps far more of the object voxels than of the others (still
    half of all voxels)."""
    cfg, model, batch = fg_setup
    model.train()
    data = model.data_preprocessor(batch, True)
    first = model.foreground_scorers()[0]
    conv = next(m for m in model.middle_encoder.modules()
                if getattr(m, 'importance', None) is first)
    seen = {}
    handle = first.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0]))
    with torch.no_grad():
        model.middle_encoder(*_encoder_inputs(model, data))
    feats = seen['x'].features.detach()
    labels = model.foreground_labels(first, model.gt_boxes(data['data_samples']))

    def kept_fractions():
        with torch.no_grad():
            model.middle_encoder(*_encoder_inputs(model, data))
        keep = conv.last_keep
        assert torch.equal(seen['x'].features, feats)  # same voxels, same features
        return float(keep[labels].float().mean()), float(keep[~labels].float().mean()), keep

    opt = torch.optim.Adam(first.parameters(), lr=0.05)
    for _ in range(100):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            first.linear(feats)[:, 0], labels.float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    fg, bg, keep = kept_fractions()
    handle.remove()
    assert abs(float(keep.float().mean()) - 0.5) < 0.01
    assert fg > 0.7 and fg > bg + 0.25, (fg, bg)


def _encoder_inputs(model, data):
    vox = data['inputs']['voxels']
    feats = model.voxel_encoder(vox['voxels'], vox['num_points'], vox['coors'])
    return feats, vox['coors'], len(data['data_samples'])


def test_foreground_detector_needs_foreground_scorers(synth_root):
    from mmdet3d.registry import MODELS

    from dm3d_mm.apis import load_config
    cfg = load_config(FG, data_root=synth_root)
    cfg.model.middle_encoder.importance = 'magnitude'
    with pytest.raises(TypeError, match="importance='foreground'"):
        MODELS.build(cfg.model)
    cfg = load_config(FG, data_root=synth_root)
    cfg.model.foreground_loss.margin = -0.1
    with pytest.raises(ValueError, match='margin'):
        MODELS.build(cfg.model)


def test_centerpoint_foreground_loss(synth_root):
    """SPSSCenterPoint (its demo config): the same loss on CenterPoint's
    pts_middle_encoder."""
    from mmdet3d.registry import DATASETS, MODELS
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope

    from dm3d_mm.apis import load_config
    from dm3d_mm.spatial import SPSSCenterPoint
    init_default_scope('mmdet3d')  # the dataset's transforms, built outside a Runner
    cfg = load_config(f'{REPO}/configs/demo/centerpoint_synth-kitti_cpu_spss50_fg-margin.py',
                      data_root=synth_root)
    model = MODELS.build(cfg.model).train()
    assert isinstance(model, SPSSCenterPoint) and len(model.foreground_scorers()) >= 4
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    data = model.data_preprocessor(pseudo_collate([ds[0]]), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert torch.isfinite(losses['loss_voxel_fg']) and losses['loss_voxel_fg'] > 0
    losses['loss_voxel_fg'].backward()
    assert all(s.linear.weight.grad.abs().sum() > 0 for s in model.foreground_scorers())


@pytest.mark.parametrize('config', ['second_synth-kitti_cpu_spss50_fg-margin.py',
                                    'centerpoint_synth-kitti_cpu_spss50_fg-margin.py',
                                    'second_synth-kitti_cpu_ada3d_stage2.py',
                                    'centerpoint_synth-kitti_cpu_ada3d_stage2.py'])
def test_loss_grid_comes_from_the_voxel_layer(synth_root, config):
    """The spatial detectors' losses place their targets with the data preprocessor's voxel
    layer's range and voxel size unless the config gives them; without a voxel layer to read
    them from a config that omits them fails naming the key."""
    from mmdet3d.registry import MODELS

    from dm3d_mm.apis import load_config
    cfg = load_config(f'{REPO}/configs/demo/{config}', data_root=synth_root)
    key = 'foreground_loss' if 'spss' in config else 'importance_loss'
    layer = cfg.model.data_preprocessor.voxel_layer
    model = MODELS.build(cfg.model)
    settings = getattr(model, key)
    assert settings['point_cloud_range'] == [float(v) for v in layer.point_cloud_range]
    assert settings['voxel_size'] == [float(v) for v in layer.voxel_size]
    cfg.model[key]['voxel_size'] = [0.4, 0.4, 0.2]  # a config's own value wins
    assert getattr(MODELS.build(cfg.model), key)['voxel_size'] == [0.4, 0.4, 0.2]
    from dm3d_mm.spatial.loss_settings import loss_settings
    with pytest.raises(KeyError, match="needs 'point_cloud_range'"):
        loss_settings(key, dict(weight=1.0), {}, voxel_layer=None)
