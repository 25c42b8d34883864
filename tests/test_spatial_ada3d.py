"""Ada3D-style pruning: BEV importance, column dropping, SPBN, sparse BEV convs, and the
detector's importance loss, on the demo SECOND."""
import gc
import itertools
import weakref

import pytest
import torch
from conftest import REPO, demo_config
from mmdet3d.registry import MODELS
from mmengine.structures import InstanceData
from torch import nn

import dm3d_mm  # noqa: F401
from dm3d_mm.cost import FlopsCounter
from dm3d_mm.spatial import SparseBEVConv2d, SparsityPreservingBN2d, center_heatmap, column_keep

ADA3D = f'{REPO}/configs/demo/studies/second_synth-kitti_cpu_ada3d50.py'


def _sparse_bev(seed=0, shape=(2, 5, 12, 10), density=0.2):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g)
    mask = (torch.rand(shape[0], 1, *shape[2:], generator=g) < density).float()
    return x * mask, mask


def test_spbn_keeps_zeros_and_normalises_over_active_pixels():
    x, mask = _sparse_bev()
    bn = SparsityPreservingBN2d(5, eps=0.0, momentum=1.0).train()
    y = bn(x)
    assert torch.equal(y * (1 - mask), torch.zeros_like(y))  # zeros stay zero
    active = mask.expand_as(x).bool()
    for c in range(5):
        vals = x[:, c][active[:, c]]
        expect = vals / vals.square().mean().sqrt()
        assert torch.allclose(y[:, c][active[:, c]], expect, atol=1e-5)
    # a BatchNorm2d state dict converts: E[x^2] = var + mean^2, beta dropped
    ref = nn.BatchNorm2d(5)
    ref.running_mean.fill_(2.0)
    ref.running_var.fill_(3.0)
    new = SparsityPreservingBN2d(5)
    new.load_state_dict(ref.state_dict())
    assert torch.allclose(new.running_sq, torch.full((5, ), 7.0))


@pytest.mark.parametrize('stride,dense_above,submanifold', [
    (1, 1.0, True), (2, 1.0, True), (1, 0.0, True), (2, 0.0, True),
    (1, 1.0, False), (2, 1.0, False), (1, 0.0, False)])
def test_sparse_bev_conv_masks_outputs_and_counts_active_pairs(stride, dense_above,
                                                               submanifold):
    """Sparse path (dense_above=1) and masked-dense fallback (0), submanifold or regular:
    the dense conv's values at the active output pixels, exact zeros elsewhere, the same
    gradients, and the (active input, active output) pairs counted; the report says which
    path ran."""
    x, mask = _sparse_bev(seed=1)
    conv = SparseBEVConv2d(5, 3, 3, stride=stride, padding=1, bias=True,
                           dense_above=dense_above, submanifold=submanifold)
    dense = nn.Conv2d(5, 3, 3, stride=stride, padding=1, bias=True)
    dense.load_state_dict(conv.state_dict())  # same keys as nn.Conv2d
    x.requires_grad_(True)
    with FlopsCounter(conv) as counter:
        y = conv(x)
    ref = dense(x)
    if not submanifold:  # every output pixel whose 3x3 window reaches an active input
        out_active = torch.nn.functional.max_pool2d(mask, 3, stride, 1)
        assert out_active.sum() > torch.nn.functional.max_pool2d(
            mask, stride, stride, ceil_mode=True).sum()  # the set grew
    elif stride > 1:
        out_active = torch.nn.functional.max_pool2d(mask, stride, stride, ceil_mode=True)
    else:
        out_active = mask
    assert torch.allclose(y, ref * out_active, atol=1e-5)
    assert torch.equal(y * (1 - out_active), torch.zeros_like(y))  # inactive: exact zeros
    g = torch.randn_like(y)
    got = torch.autograd.grad((y * g).sum(), [x, conv.weight, conv.bias])
    want = torch.autograd.grad((ref * out_active * g).sum(), [x, dense.weight, dense.bias])
    # inputs: at the active pixels (inactive ones are absent to the sparse path)
    assert torch.allclose(got[0] * mask, want[0] * mask, atol=1e-4)
    for a, b in zip(got[1:], want[1:]):
        assert torch.allclose(a, b, atol=1e-4)
    mode = 'skipped' if dense_above == 1.0 else 'counted only'
    assert conv.spatial_saving == counter.layers[''].spatial_saving == mode
    x = x.detach()
    # brute force: (active output, offset) pairs whose input pixel is active
    n, _, h, w = x.shape
    counts = [0] * 9
    for b, oy, ox in itertools.product(range(n), range(y.shape[2]), range(y.shape[3])):
        if not out_active[b, 0, oy, ox]:
            continue
        for k, (dy, dx) in enumerate(itertools.product(range(3), repeat=2)):
            iy, ix = oy * stride - 1 + dy, ox * stride - 1 + dx
            counts[k] += bool(0 <= iy < h and 0 <= ix < w and mask[b, 0, iy, ix])
    assert counter.layers[''].pairs.tolist() == counts
    assert counter.total_macs() == sum(counts) * 5 * 3


def test_column_keep_drops_whole_columns_per_sample():
    g = torch.Generator().manual_seed(0)
    idx = torch.unique(torch.stack([torch.randint(0, 2, (600, ), generator=g),
                                    torch.randint(0, 6, (600, ), generator=g),
                                    torch.randint(0, 16, (600, ), generator=g),
                                    torch.randint(0, 16, (600, ), generator=g)], 1), dim=0)
    imp = torch.rand(2, 1, 8, 8, generator=g)  # a coarser importance grid than the voxels
    keep = column_keep(idx, (16, 16), imp, 0.4)
    for b in range(2):
        cols = {}
        for row, k in zip(idx[idx[:, 0] == b].tolist(), keep[idx[:, 0] == b].tolist()):
            cols.setdefault((row[2], row[3]), set()).add(k)
        assert all(len(v) == 1 for v in cols.values())  # a column is kept or dropped whole
        kept = sum(v == {True} for v in cols.values())
        assert kept == len(cols) - int(len(cols) * 0.6)
        # the kept columns are the most important ones
        score = {c: float(imp[b, 0, c[0] // 2, c[1] // 2]) for c in cols}
        kept_min = min(score[c] for c, v in cols.items() if v == {True})
        dropped_max = max(score[c] for c, v in cols.items() if v == {False})
        assert kept_min >= dropped_max


def test_center_heatmap_peaks_at_box_centres():
    from mmdet3d.structures import LiDARInstance3DBoxes
    boxes = LiDARInstance3DBoxes(torch.tensor([[10.2, -3.0, -1.0, 4.0, 1.8, 1.5, 0.3]]))
    hm = center_heatmap([InstanceData(bboxes_3d=boxes)], 1, (128, 128), [0, -25.6, -3],
                        [0.4, 0.4])
    cy, cx = int((-3.0 + 25.6) / 0.4), int(10.2 / 0.4)
    assert hm[0, 0, cy, cx] == 1.0 and hm.max() == 1.0
    assert hm[0, 0, cy, cx + 10] == 0 and hm[0, 0, :, :cx - 10].sum() == 0


def _encoder_inputs(model, data):
    """(voxel features, coordinates, batch size) that the detector feeds its encoder."""
    v = data['inputs']['voxels']
    feats = model.voxel_encoder(v['voxels'], v['num_points'], v['coors'])
    return feats, v['coors'], int(v['coors'][-1, 0]) + 1


@pytest.fixture(scope='module')
def ada3d_setup(synth_root):
    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.prune import calibration_batches
    cfg = load_config(ADA3D, data_root=synth_root)
    model = MODELS.build(cfg.model)
    return cfg, model, calibration_batches(cfg, 1, 'val')[0]


def test_ada3d_training_iteration_trains_the_predictor(ada3d_setup, synth_root):
    from mmdet3d.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    cfg, model, _ = ada3d_setup
    model.train()
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    data = model.data_preprocessor(pseudo_collate([ds[0], ds[1]]), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert losses['loss_importance'] > 0
    total, _ = model.parse_losses(losses)
    total.backward()
    grad = model.middle_encoder.predictor.net[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0
    # BEV pixels outside the kept half stay exactly zero through the whole 2D backbone
    # (sparse convs + SPBN + ReLU), in training mode and in eval mode
    with torch.no_grad():
        for train in (True, False):
            model.train(train)
            bev = model.middle_encoder(*_encoder_inputs(model, data))
            mask = model.middle_encoder.last_bev_mask[:, None].float()
            assert 0 < mask.mean() < 1
            assert torch.equal((bev != 0).any(1, keepdim=True).float(), mask)
            for out in model.backbone(bev):
                stride = bev.shape[-1] // out.shape[-1]
                keep = torch.nn.functional.max_pool2d(mask, stride, stride) if stride > 1 \
                    else mask
                assert torch.equal(out * (1 - keep), torch.zeros_like(out))
                assert (out * keep).abs().sum() > 0


def test_ada3d_prunes_voxels_and_bev_pixels(ada3d_setup, synth_root):
    from dm3d_mm.apis.model import build_detector
    cfg, model, batch = ada3d_setup
    model.eval()
    dense = build_detector(demo_config('second', synth_root))
    with torch.no_grad():
        vd = model.data_preprocessor(batch, False)['inputs']['voxels']
        n_vox = len(vd['coors'])
        with FlopsCounter(model) as pruned:
            model.test_step(batch)
        with FlopsCounter(dense) as full:
            dense.test_step(batch)
    enc = model.middle_encoder
    seen = pruned.layers['middle_encoder.conv_input.0'].sites_in
    keep = column_keep(vd['coors'], enc.sparse_shape[1:], torch.sigmoid(enc.last_logits), 0.5)
    assert seen == int(keep.sum()) < n_vox  # the voxels of the dropped columns are gone
    mask = enc.last_bev_mask
    first_conv = pruned.layers['backbone.blocks.0.0']
    # counted as it runs: the rows of the active (kept) pixels only, of the whole map
    assert first_conv.sites_in == int(mask.sum()) < mask[0].numel()
    for part in ('3D backbone', '2D backbone'):
        p = sum(s.macs() for s in pruned.layers.values() if s.part == part)
        d = sum(s.macs() for s in full.layers.values() if s.part == part)
        assert p < d, part
    # the 2D backbone's first conv only pairs active (kept) pixels
    assert int(first_conv.pairs[4]) == int(mask.sum())


def test_ada3d_is_counted_as_it_runs_on_rows(synth_root):
    """Under a FLOPs counter alone the shipped Ada3D SECOND's 2D backbone, neck and head keep
    their rows paths (the uncounted forward's) and tell the counter each call; with any
    other hook they run module by module. Both give the same outputs and, for every layer,
    the same pairs and calls; the rows path counts the active pixels it gathers (fewer sites
    than the map) and the norm / activation work over those rows only."""
    from test_joint import ADA3D, _model

    from dm3d_mm.apis.prune import calibration_batches
    cfg, _, model = _model(ADA3D, synth_root)
    batch = calibration_batches(cfg, 1, 'val')[0]
    model.eval()
    assert [type(p).__name__ for p in (model.backbone, model.neck, model.bbox_head)] == [
        'SparseBEVSECOND', 'SparseBEVSECONDFPN', 'SparseBEVAnchor3DHead']
    parts = [model.backbone, model.neck, model.bbox_head]
    with torch.no_grad():
        with FlopsCounter(model) as on_rows:
            rows_out = model.test_step(batch)
        handles = [m.register_forward_hook(lambda *args: None)
                   for part in parts for m in part.modules()]
        try:
            with FlopsCounter(model) as by_module:
                module_out = model.test_step(batch)
        finally:
            for h in handles:
                h.remove()
    a, b = rows_out[0].pred_instances_3d, module_out[0].pred_instances_3d
    assert len(a.scores_3d) == len(b.scores_3d) > 0
    assert torch.allclose(a.scores_3d, b.scores_3d, atol=1e-5)
    assert list(on_rows.layers) == list(by_module.layers)
    for name, st in on_rows.layers.items():
        assert torch.equal(st.pairs, by_module.layers[name].pairs), name
        assert st.calls == by_module.layers[name].calls, name
        assert st.sites_in <= by_module.layers[name].sites_in, name
    conv, relu = on_rows.layers['backbone.blocks.0.0'], 'backbone.blocks.0.2'
    assert conv.sites_in < by_module.layers['backbone.blocks.0.0'].sites_in
    assert isinstance(model.get_submodule(relu), nn.ReLU)
    assert on_rows.aux[relu].flops == conv.sites_out * conv.module.out_channels
    assert by_module.aux[relu].flops > on_rows.aux[relu].flops
    for i, deblock in enumerate(model.neck.deblocks):  # deconv -> BN -> ReLU on its rows
        up = on_rows.layers[f'neck.deblocks.{i}.0']
        assert on_rows.aux[f'neck.deblocks.{i}.1'].flops == 2 * up.sites_out * \
            up.module.out_channels
        assert on_rows.aux[f'neck.deblocks.{i}.2'].flops == up.sites_out * up.module.out_channels
    for part in ('backbone.', 'neck.', 'bbox_head.'):
        rows_aux = sum(s.flops for n, s in on_rows.aux.items() if n.startswith(part))
        module_aux = sum(s.flops for n, s in by_module.aux.items() if n.startswith(part))
        assert rows_aux <= module_aux, part


def test_ada3d_encoder_empty_and_single_voxel(ada3d_setup):
    """One voxel: its column is the only one, so the input pruning keeps it and the output
    equals mmdet3d's SparseEncoder with the same weights; the BEV pruning then keeps
    n - floor(n / 2) of the n pixels it reaches. No voxels: an all-zero BEV map."""
    cfg, model, _ = ada3d_setup
    enc = model.middle_encoder.eval()
    plain_cfg = {k: v for k, v in cfg.model.middle_encoder.items()
                 if k not in ('predictor', 'keep_ratios', 'backend')}
    plain = MODELS.build(dict(plain_cfg, type='SparseEncoder')).eval()
    missing, unexpected = plain.load_state_dict(enc.state_dict(), strict=False)
    assert not missing and all(k.startswith('predictor.') for k in unexpected)
    torch.manual_seed(0)
    feats = torch.randn(1, 4)
    coors = torch.tensor([[0, 20, 100, 200]], dtype=torch.int32)
    assert enc.keep_ratios == dict(input=0.5, bev=0.5)
    with torch.no_grad():
        ref = plain(feats, coors, 1)
        with_bev = enc(feats, coors, 1)
        enc.keep_ratios = dict(input=0.5)
        one = enc(feats, coors, 1)
        empty = enc(feats[:0], coors[:0], 1)
    assert one.shape == ref.shape and torch.equal(one, ref)
    active = (ref != 0).any(1)
    n = int(active.sum())
    assert n > 1  # the strided convs spread one voxel over several BEV pixels
    kept = (with_bev != 0).any(1)
    assert int(kept.sum()) == n - n // 2 and not (kept & ~active).any()
    assert torch.equal(with_bev, ref * kept[:, None])
    assert empty.shape == ref.shape and not empty.any()


def test_bad_keep_ratio_location_is_a_clear_error(synth_root):
    from dm3d_mm.apis import load_config
    cfg = load_config(ADA3D, data_root=synth_root)
    cfg.model.middle_encoder.keep_ratios = dict(stage9=0.5)
    with pytest.raises(ValueError, match='stage9'):
        MODELS.build(cfg.model)


@pytest.mark.parametrize('dense_above,grow', [(1.0, False), (0.3, False), (1.0, True)])
def test_row_backbone_equals_layer_by_layer(dense_above, grow):
    """SparseBEVSECOND's row path gives the layer-by-layer values, gradients and SPBN
    statistics (also when some convs take the dense path, or each block's first conv grows
    the active set), keeps pixels outside the active set zero, and a FLOPs counter (hooks)
    sees every block's first conv with the same pairs and the later ones with at most the
    eval path's (which also multiplies rows that died within the block)."""
    from dm3d_mm.spatial import SparseBEVSECOND
    torch.manual_seed(0)
    cfg = dict(in_channels=6, out_channels=[8, 12], layer_nums=[2, 1], layer_strides=[1, 2],
               conv_cfg=dict(type='SparseBEVConv2d', bias=False, dense_above=dense_above),
               norm_cfg=dict(type='SPBN2d', eps=1e-3, momentum=0.5), grow_per_block=grow)
    rows_net = SparseBEVSECOND(**cfg)
    ref_net = SparseBEVSECOND(**cfg)
    ref_net.load_state_dict(rows_net.state_dict())
    x, mask = _sparse_bev(seed=3, shape=(2, 6, 16, 14), density=0.2)
    for train in (True, False):
        rows_net.train(train)
        ref_net.train(train)
        xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        outs = rows_net(xa)
        refs = tuple(itertools.accumulate(ref_net.blocks, lambda h, blk: blk(h), initial=xb))[1:]
        for a, b in zip(outs, refs):
            assert torch.allclose(a, b, atol=1e-5)
        pool = torch.nn.functional.max_pool2d
        keep = pool(pool(mask, 3, 1, 1), 3, 2, 1) if grow else pool(mask, 2, 2)
        assert torch.equal(outs[1] * (1 - keep), torch.zeros_like(outs[1]))
        grown = ((outs[0] != 0).any(1, keepdim=True) & (mask == 0)).any()
        assert bool(grown) == grow  # features reach pixels without points only when grown
        sum(o.square().sum() for o in outs).backward()
        sum(o.square().sum() for o in refs).backward()
        assert torch.allclose(xa.grad, xb.grad, atol=1e-4)
        for (n, p), q in zip(rows_net.named_parameters(), ref_net.parameters()):
            assert torch.allclose(p.grad, q.grad, atol=1e-4), n
        for a, b in zip(rows_net.buffers(), ref_net.buffers()):
            assert torch.allclose(a, b, atol=1e-6)
    # the pairs each conv multiplied on the row path are the ones a FLOPs counter sees
    # (with its hooks attached the blocks run layer by layer)
    convs = [m for m in rows_net.modules() if isinstance(m, SparseBEVConv2d)]
    with torch.no_grad():
        rows_net(x)
        on_rows = [None if c._last_pairs is None else c._last_pairs.clone() for c in convs]
        with FlopsCounter(rows_net) as counter:
            rows_net(x)
    assert any(p is not None for p in on_rows)
    firsts = {id(block[0]) for block in rows_net.blocks}
    for name, conv, pairs in zip(counter.layers, convs, on_rows):
        assert counter.layers[name].module is conv
        if pairs is None:
            continue
        # sparse calls: the rulebook's pairs; a block's later convs also multiply the pairs
        # of the rows that died before them (zeros, never fewer than counted)
        counted = counter.layers[name].pairs
        if id(conv) in firsts:
            assert torch.equal(counted, pairs)
        else:
            assert bool((pairs >= counted).all()) and int((pairs - counted).sum()) <= \
                0.02 * int(counted.sum())


@pytest.mark.parametrize('stride,bias', [(2, True), (4, False)])
def test_sparse_bev_deconv_equals_the_dense_layer(stride, bias):
    """SparseBEVDeconv2d (kernel == stride) gives nn.ConvTranspose2d's values everywhere
    (inactive blocks hold the bias) and its gradients, and counts the active pixels once
    per kernel offset."""
    from dm3d_mm.spatial import SparseBEVDeconv2d
    x, mask = _sparse_bev(seed=4, shape=(2, 5, 7, 6), density=0.3)
    torch.manual_seed(0)
    up = SparseBEVDeconv2d(5, 3, stride, stride=stride, bias=bias)
    dense = nn.ConvTranspose2d(5, 3, stride, stride=stride, bias=bias)
    dense.load_state_dict(up.state_dict())
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    with FlopsCounter(up) as counter:
        ya = up(xa)
    yb = dense(xb)
    assert ya.shape == yb.shape and torch.allclose(ya, yb, atol=1e-6)
    (ya * torch.arange(ya.numel()).view_as(ya).sin()).sum().backward()
    (yb * torch.arange(yb.numel()).view_as(yb).sin()).sum().backward()
    assert torch.allclose(xa.grad * mask, xb.grad * mask, atol=1e-5)
    assert torch.allclose(up.weight.grad, dense.weight.grad, atol=1e-5)
    assert int(counter.layers[''].pairs.sum()) == int(mask.sum()) * stride * stride


# a small anchor head reading the 7-channel output of _neck_pair's necks
HEAD_CFG = dict(
    num_classes=2, in_channels=7, feat_channels=7, use_direction_classifier=True,
    anchor_generator=dict(type='AlignedAnchor3DRangeGenerator', ranges=[[0, -4, -1, 6, 4, -1]],
                          sizes=[[1, 1, 1]], rotations=[0, 1.57], reshape_out=True),
    diff_rad_by_sin=True, bbox_coder=dict(type='DeltaXYZWLHRBBoxCoder'))


def _neck_pair(bias, conv_for_no_stride=False):
    """A SparseBEVSECONDFPN and mmdet3d's SECONDFPN with the same (trained-looking) state;
    ``conv_for_no_stride``: the unstrided branch a 1x1 conv (CenterPoint's necks), sparse
    (SparseBEVConv2d) in the one, nn.Conv2d in the other."""
    cfg = dict(in_channels=[5, 7], out_channels=[4, 3], upsample_strides=[1, 2],
               upsample_cfg=dict(type='SparseBEVDeconv2d', bias=bias),
               use_conv_for_no_stride=conv_for_no_stride,
               conv_cfg=dict(type='SparseBEVConv2d', bias=False))
    torch.manual_seed(1)
    sparse = MODELS.build(dict(type='SparseBEVSECONDFPN', **cfg))
    for m in sparse.modules():  # BN with shifted running statistics and affine terms
        if isinstance(m, nn.BatchNorm2d):
            for t in (m.running_mean, m.weight, m.bias):
                t.data.uniform_(-1, 1)
            m.running_var.data.uniform_(0.5, 2)
    dense = MODELS.build(dict(type='SECONDFPN', **dict(
        cfg, upsample_cfg=dict(type='deconv', bias=bias), conv_cfg=dict(type='Conv2d',
                                                                        bias=False))))
    dense.load_state_dict(sparse.state_dict())
    return sparse.eval(), dense.eval()


@pytest.mark.parametrize('bias,conv_for_no_stride', [(False, False), (True, False),
                                                     (True, True)])
def test_sparse_bev_neck_and_head_equal_the_dense_ones(bias, conv_for_no_stride):
    """In eval, SparseBEVSECONDFPN gives SECONDFPN's values, and every pixel outside its
    support's active set holds the support's background vector (also with the unstrided
    branch a pointwise SparseBEVConv2d); SparseBEVAnchor3DHead on that map gives
    Anchor3DHead's outputs (loaded from the same state dict) at every pixel."""
    from dm3d_mm.spatial import SparseBEVConv2d, support_of
    sparse, dense = _neck_pair(bias, conv_for_no_stride)
    assert isinstance(sparse.deblocks[0][0], SparseBEVConv2d) == conv_for_no_stride
    x0, m0 = _sparse_bev(seed=5, shape=(2, 5, 8, 6), density=0.2)
    x1, m1 = _sparse_bev(seed=6, shape=(2, 7, 4, 3), density=0.3)
    with torch.no_grad():
        ys, = sparse([x0, x1])
        yd, = dense([x0, x1])
    assert ys.shape == yd.shape and torch.allclose(ys, yd, atol=1e-5)
    support = support_of(ys)
    assert support is not None
    inactive = ~support.active
    assert int(inactive.sum()) > 0 and int(support.active.sum()) > 0
    bg = ys.permute(0, 2, 3, 1)[inactive]
    assert torch.allclose(bg, support.background.expand_as(bg), atol=1e-6)
    # the active set is the union of the branches' upsampled active pixels
    expect = m0[:, 0].bool() | m1[:, 0].bool().repeat_interleave(2, 1).repeat_interleave(2, 2)
    assert torch.equal(support.active, expect)

    torch.manual_seed(2)
    sh = MODELS.build(dict(type='SparseBEVAnchor3DHead', **HEAD_CFG)).eval()
    dh = MODELS.build(dict(type='Anchor3DHead', **HEAD_CFG)).eval()
    dh.load_state_dict(sh.state_dict())
    with torch.no_grad():
        outs_s = sh([ys])
        outs_d = dh([yd.contiguous()])
    for a, b in zip(outs_s, outs_d):
        assert a[0].shape == b[0].shape and torch.allclose(a[0], b[0], atol=1e-5)
    # under a FLOPs counter (hooks): the same values, and the convs counted at the active
    # pixels only, the pixels they really multiply
    with FlopsCounter(sh) as counter, torch.no_grad():
        hooked = sh([ys])
    for a, b in zip(hooked, outs_d):
        assert torch.allclose(a[0], b[0], atol=1e-5)
    active = int(support.active.sum())
    for name in ('conv_cls', 'conv_reg', 'conv_dir_cls'):
        conv = getattr(sh, name)
        assert counter.layers[name].ops() == active * conv.in_channels * conv.out_channels
    # the neck under hooks: its layers called as modules, the same support attached
    with FlopsCounter(sparse) as counter, torch.no_grad():
        yh, = sparse([x0, x1])
    assert torch.allclose(yh, yd, atol=1e-5) and torch.equal(support_of(yh).active,
                                                             support.active)
    assert torch.allclose(support_of(yh).background, support.background)
    # without a support (a fresh tensor) the head runs its dense convs: same values again
    with torch.no_grad():
        again = sh([ys.clone()])
    assert support_of(ys.clone()) is None
    for a, b in zip(again, outs_d):
        assert torch.allclose(a[0], b[0], atol=1e-5)


def test_sparse_bev_neck_trains_as_secondfpn():
    """In training the neck runs SECONDFPN's forward (BN batch statistics over the whole map,
    no support attached): outputs and BN running statistics equal the dense neck's."""
    from dm3d_mm.spatial import support_of
    sparse, dense = _neck_pair(False)
    sparse.train(), dense.train()
    x0, _ = _sparse_bev(seed=7, shape=(2, 5, 8, 6), density=0.2)
    x1, _ = _sparse_bev(seed=8, shape=(2, 7, 4, 3), density=0.3)
    ys, = sparse([x0, x1])
    yd, = dense([x0, x1])
    assert support_of(ys) is None and torch.allclose(ys, yd, atol=1e-5)
    for a, b in zip(sparse.modules(), dense.modules()):
        if isinstance(a, nn.BatchNorm2d):
            assert torch.allclose(a.running_mean, b.running_mean, atol=1e-6)


def test_sparse_bev_neck_and_head_on_an_empty_map():
    """No active pixel at all (an empty frame): the background everywhere, equal to the dense
    neck and head, with and without a FLOPs counter's hooks (which then count nothing)."""
    sparse, dense = _neck_pair(True)
    xs = [torch.zeros(1, 5, 8, 6), torch.zeros(1, 7, 4, 3)]
    sh = MODELS.build(dict(type='SparseBEVAnchor3DHead', **HEAD_CFG)).eval()
    dh = MODELS.build(dict(type='Anchor3DHead', **HEAD_CFG)).eval()
    dh.load_state_dict(sh.state_dict())
    with torch.no_grad():
        ys, = sparse(xs)
        yd, = dense(xs)
        ref = dh([yd])
        plain = sh([ys])
        with FlopsCounter(sh) as counter:
            hooked = sh([ys])
    assert torch.allclose(ys, yd, atol=1e-5) and not bool(ys.bev_support.active.any())
    for a, b, r in zip(plain, hooked, ref):
        assert torch.allclose(a[0], r[0], atol=1e-5) and torch.allclose(b[0], r[0], atol=1e-5)
    assert all(st.ops() == 0 for st in counter.layers.values())


def _reached_brute_force(active, k, border):
    """Pixels whose k x k window (padding k // 2) holds an active pixel or, with ``border``,
    lies partly outside the map: one pixel at a time."""
    n, h, w = active.shape
    r = k // 2
    out = torch.zeros_like(active)
    for b, y, x in itertools.product(range(n), range(h), range(w)):
        outside = y < r or x < r or y >= h - r or x >= w - r
        out[b, y, x] = bool(active[b, max(y - r, 0):y + r + 1, max(x - r, 0):x + r + 1].any()) \
            or (border and outside)
    return out


@pytest.mark.parametrize('zero_background', [False, True])
def test_support_convs_compute_the_reached_pixels_only(zero_background):
    """A CenterHead-like chain on a map with a BEVSupport (SupportConv2d 3x3 -> SupportBN2d ->
    in-place ReLU -> SupportConv2d 3x3 with bias, twice from one map) gives the dense chain's
    values at every pixel; each conv multiplies (counted by a FlopsCounter) exactly the pixels
    whose window reaches the support or, with a non-zero background, the zero padding (brute
    force), and every other output pixel holds the one background output. With pruning masks
    attached (pre-forward hooks) the same holds for the masked weights."""
    from mmcv.cnn import ConvModule

    from dm3d_mm.spatial import BEVSupport, support_of
    from dm3d_mm.spatial.sparse_bev_neck import attach_support
    from dm3d_mm.weight.masks import MaskSet
    torch.manual_seed(3)
    n, c, h, w = 2, 6, 15, 13
    active = torch.zeros(n, h, w, dtype=torch.bool)
    active[0, 4:6, 3:5] = True
    active[1, 9, 7] = True
    bg = torch.zeros(c) if zero_background else torch.randn(c)
    x = bg.view(1, c, 1, 1).expand(n, c, h, w).clone()
    x.permute(0, 2, 3, 1)[active] = torch.randn(int(active.sum()), c)

    def chain(conv_type, norm_type):
        first = ConvModule(c, 5, 3, padding=1, conv_cfg=dict(type=conv_type),
                           norm_cfg=dict(type=norm_type), bias=False)
        outs = [MODELS.build(dict(type=conv_type, in_channels=5, out_channels=o,
                                  kernel_size=3, padding=1, bias=True)) for o in (3, 2)]
        return nn.ModuleList([first, *outs])

    sparse, dense = chain('SupportConv2d', 'SupportBN2d'), chain('Conv2d', 'BN2d')
    for m in sparse.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.data.uniform_(-1, 1)
            m.weight.data.uniform_(-1, 1)
            m.bias.data.uniform_(-1, 1)
    dense.load_state_dict(sparse.state_dict())
    sparse.eval(), dense.eval()

    def run(net, inp):
        hidden = net[0](inp)
        return hidden, [net[1](hidden), net[2](hidden)]

    masks = {'0.conv': torch.rand(5, c, 3, 3) > 0.5, '1': torch.rand(3, 5, 3, 3) > 0.3}
    for masked in (False, True):
        if masked:
            MaskSet(sparse, masks).attach()
            MaskSet(dense, masks).attach()
        with FlopsCounter(sparse) as counter, torch.no_grad():
            hidden, outs = run(sparse, attach_support(x.clone(), BEVSupport(active, bg)))
            ref_hidden, refs = run(dense, x.clone())
        assert torch.allclose(hidden, ref_hidden, atol=1e-5)
        for out, ref in zip(outs, refs):
            assert torch.allclose(out, ref, atol=1e-5)
        reached1 = _reached_brute_force(active, 3, border=bool(bg.any()))
        hidden_bg = support_of(hidden).background
        reached2 = _reached_brute_force(reached1, 3, border=bool(hidden_bg.any()))
        assert torch.equal(support_of(hidden).active, reached1)
        assert int(reached1.sum()) < n * h * w  # the test skips pixels
        for name, reached in (('0.conv', reached1), ('1', reached2), ('2', reached2)):
            assert counter.layers[name].pairs.tolist() == [int(reached.sum())] * 9, name
        for out in outs:
            s = support_of(out)
            assert torch.equal(s.active, reached2)
            rest = out.permute(0, 2, 3, 1)[~reached2]
            assert len(rest) and torch.equal(rest, s.background.expand_as(rest))
    # an empty map with a zero background: nothing reached, the background everywhere
    empty = torch.zeros(n, c, h, w)
    with FlopsCounter(sparse) as counter, torch.no_grad():
        hidden, outs = run(sparse, attach_support(empty.clone(),
                                                  BEVSupport(torch.zeros_like(active),
                                                             torch.zeros(c))))
        ref_hidden, refs = run(dense, empty)
    assert counter.layers['0.conv'].pairs.tolist() == [0] * 9
    for out, ref in zip([hidden, *outs], [ref_hidden, *refs]):
        assert torch.allclose(out, ref, atol=1e-5)
    # every pixel active: the dense convs, the same values, counted so
    full = torch.ones_like(active)
    with FlopsCounter(sparse) as counter, torch.no_grad():
        hidden, outs = run(sparse, attach_support(x.clone(), BEVSupport(full, bg)))
        ref_hidden, refs = run(dense, x.clone())
    for out, ref in zip([hidden, *outs], [ref_hidden, *refs]):
        assert torch.allclose(out, ref, atol=1e-5)
    assert counter.layers['0.conv'].pairs.tolist() == [n * h * w] * 9
    # without a support the convs run dense and are counted so
    with FlopsCounter(sparse) as counter, torch.no_grad():
        run(sparse, x.clone())
    assert counter.layers['1'].pairs.tolist() == [n * h * w] * 9
    # the maps are freed once dropped (their supports and the windows cached on them hold
    # no view of them), with gradients recorded too: nothing accumulates over many forwards
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            inp = attach_support(x.clone(), BEVSupport(active, bg))
            hidden, outs = run(sparse, inp)
        maps = [weakref.ref(t) for t in (inp, hidden, *outs)]
        del inp, hidden, outs
        gc.collect()
        assert all(r() is None for r in maps), grad


def test_dense_blocks_are_second_blocks():
    """``dense_blocks`` builds the named blocks as mmdet3d's SECOND does: a dense SECOND
    checkpoint loads into them strictly, they compute every pixel (features reach the pixels
    the sparse block left empty) and equal SECOND's block on the sparse block's output; an
    index past the blocks is a clear error. (Fails if the sparse block were kept: the
    stride-2 output would stay zero outside the pooled mask.)"""
    from mmdet3d.models.backbones import SECOND

    from dm3d_mm.errors import UnfitModel
    from dm3d_mm.spatial import SparseBEVSECOND
    torch.manual_seed(0)
    args = dict(in_channels=6, out_channels=[8, 12], layer_nums=[2, 1], layer_strides=[1, 2])
    net = SparseBEVSECOND(**args, conv_cfg=dict(type='SparseBEVConv2d', bias=False),
                          norm_cfg=dict(type='SPBN2d', eps=1e-3, momentum=0.5),
                          dense_blocks=(1, )).eval()
    dense = SECOND(**args).eval()
    dense.blocks[1].load_state_dict(net.blocks[1].state_dict(), strict=True)
    assert isinstance(net.blocks[0][0], SparseBEVConv2d)
    assert type(net.blocks[1][0]) is torch.nn.Conv2d
    x, mask = _sparse_bev(seed=3, shape=(2, 6, 16, 14), density=0.2)
    with torch.no_grad():
        for m in net.blocks[1].modules():  # BN statistics that move values off zero
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
        dense.blocks[1].load_state_dict(net.blocks[1].state_dict())
        outs = net(x)
        assert torch.allclose(outs[1], dense.blocks[1](outs[0]), atol=1e-6)
    keep = torch.nn.functional.max_pool2d(mask, 2, 2)
    assert bool(((outs[1] != 0).any(1, keepdim=True) & (keep == 0)).any())
    with pytest.raises(UnfitModel, match='dense_blocks'):
        SparseBEVSECOND(**args, dense_blocks=(2, ))


def test_eval_rows_path_zeroes_dead_rows_and_hands_their_flags_on():
    """In eval mode the row path checks no row before a conv on the host: a row that dies
    (here: a centre-tap identity conv and a ReLU zero the pixels whose features are all
    negative) is flagged on the device and zeroed, so each block's output equals the
    layer-by-layer one; the map carries its rows' mask (count known) and live flags, the
    next block's strided first conv takes only the live rows' pairs (its output equals the
    layer-by-layer one too, where the pooled dead pixels stay inactive), and the block waits
    for nothing but that conv's rulebook. (Fails if the dead rows were not zeroed: the next
    conv would write them; or if the strided conv took every row: it would multiply the
    dead rows' pairs.)"""
    from dm3d_mm.cost.host_syncs import HostSyncCounter
    from dm3d_mm.spatial import SparseBEVSECOND
    from dm3d_mm.spatial.active_pixels import known_count, live_rows
    torch.manual_seed(0)
    net = SparseBEVSECOND(in_channels=4, out_channels=[4, 6], layer_nums=[1, 1],
                          layer_strides=[1, 2],
                          conv_cfg=dict(type='SparseBEVConv2d', bias=False, dense_above=1.0),
                          norm_cfg=dict(type='SPBN2d', eps=1e-3, momentum=0.5)).eval()
    first = net.blocks[0][0]
    with torch.no_grad():
        first.weight.zero_()
        first.weight[:, :, 1, 1] = torch.eye(4)
    x, mask = _sparse_bev(seed=5, shape=(1, 4, 12, 10), density=0.5)
    x[:, :, :6] = -x[:, :, :6].abs()  # the top half dies after the first ReLU
    x[:, :, 6:] = x[:, :, 6:].abs()
    strided = net.blocks[1][0]
    with torch.no_grad():
        ref0 = net.blocks[0](x)  # layer by layer, each conv on its input's non-zero pixels
        ref1 = net.blocks[1](ref0)
        ref_pairs = strided._last_pairs.clone()
        out0, out1 = net(x)
        assert torch.equal(strided._last_pairs, ref_pairs)  # the live rows' pairs only
        died = mask[:, 0].bool() & ~(net.blocks[0][:3](x) != 0).any(1)
        assert bool(died.any()) and bool((mask[:, 0, 6:] > 0).any())
        assert torch.allclose(out0, ref0, atol=1e-6) and torch.allclose(out1, ref1, atol=1e-6)
        rows_mask, alive = live_rows(out0)
        assert known_count(rows_mask) == len(alive) and not bool(alive.all())
        live = torch.zeros_like(rows_mask)
        live.view(-1)[rows_mask.view(-1).nonzero().flatten()] = alive
        assert torch.equal(live, (out0 != 0).any(1))
        with HostSyncCounter() as counter:
            net.blocks and net(x)
        # the first block's rulebook and the strided conv's (pairs and outputs in one read)
        # and the second block's stride-1 rulebook; the input mask's count read once
        assert sum(counter.count.syncs.values()) <= 4, counter.count.syncs
