"""SPSS-Conv spatial pruning: exactness at ratio 0, pairs against brute force, geometry,
gradients to a learned importance head, degenerate inputs."""
import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from conftest import demo_config
from mmdet3d.registry import MODELS
from spconv.pytorch import SparseConvTensor

import dm3d_mm  # noqa: F401
from dm3d_mm.cost import FlopsCounter
from dm3d_mm.spatial import SPSSSparseConv3d, SPSSSubMConv3d, keep_mask


def _random_voxels(n, shape, batch=2, channels=8, seed=0, corners=True):
    g = torch.Generator().manual_seed(seed)
    cols = [torch.randint(0, batch, (n, ), generator=g)]
    cols += [torch.randint(0, s, (n, ), generator=g) for s in shape]
    idx = torch.stack(cols, 1)
    if corners:  # coordinate 0 and the far edge on every axis
        extra = [[b, *c] for b in range(batch)
                 for c in itertools.product(*[(0, s - 1) for s in shape])]
        idx = torch.cat([idx, torch.tensor(extra)])
    idx = torch.unique(idx, dim=0).int()
    return idx, torch.randn(len(idx), channels, generator=g)


def _dense_at(x_idx, feats, shape, batch, weight, sites, stride, padding):
    """Dense conv3d of the scattered input, read at the given output sites."""
    dense = torch.zeros(batch, feats.shape[1], *shape)
    i = x_idx.long()
    dense[i[:, 0], :, i[:, 1], i[:, 2], i[:, 3]] = feats
    out = F.conv3d(dense, weight.permute(0, 4, 1, 2, 3), stride=stride, padding=padding)
    s = sites.long()
    return out[s[:, 0], :, s[:, 1], s[:, 2], s[:, 3]]


def _brute_pairs(fine, coarse, ks, stride, pad):
    """Pairs per offset by enumerating every coarse site's kernel window."""
    fine_set = {tuple(r) for r in fine.tolist()}
    counts = [0] * (ks ** 3)
    for b, *c in coarse.tolist():
        for k, (dz, dy, dx) in enumerate(itertools.product(range(ks), repeat=3)):
            f = (b, c[0] * stride - pad + dz, c[1] * stride - pad + dy, c[2] * stride - pad + dx)
            counts[k] += f in fine_set
    return counts


@pytest.mark.parametrize('backend', ['spconv', 'torch'])
@pytest.mark.parametrize('ratio', [0.0, 0.3, 0.6])
@pytest.mark.parametrize('gemm', ['spconv', 'torch'])
def test_pruned_subm_computes_kept_sites_exactly(backend, ratio, gemm):
    shape = (9, 14, 12)
    idx, feats = _random_voxels(400, shape)
    conv = SPSSSubMConv3d(8, 8, 3, padding=1, bias=False, indice_key='k', prune_ratio=ratio)
    conv.rulebook_backend, conv.force_rulebook, conv.gemm_backend = backend, True, gemm
    x = SparseConvTensor(feats, idx, list(shape), 2)
    with torch.no_grad():
        out = conv(x)
    keep = conv.last_keep
    assert keep.sum() == len(idx) - sum(int(n * ratio) for n in torch.bincount(idx[:, 0].long()))
    ref = _dense_at(idx, feats, shape, 2, conv.weight, idx, 1, 1)
    assert torch.allclose(out.features[keep], ref[keep], atol=1e-5)
    assert torch.equal(out.features[~keep], feats[~keep])  # pruned voxels pass through
    assert conv._last_pairs.tolist() == _brute_pairs(idx, idx[keep], 3, 1, 1)


def _expected_regular_sites(idx, keep, shape, ks, stride, pad):
    out_shape = [(s + 2 * pad - ks) // stride + 1 for s in shape]
    sites = set()
    for (b, *f), k in zip(idx.tolist(), keep.tolist()):
        cands = []
        for off in itertools.product(range(ks), repeat=3):
            num = [fi + pad - o for fi, o in zip(f, off)]
            if all(n % stride == 0 and 0 <= n // stride < so for n, so in zip(num, out_shape)):
                cands.append((b, *[n // stride for n in num]))
        if not cands:  # no kernel window reaches it (far edge without padding)
            continue
        if k:
            sites.update(cands)
        else:  # its own cell (floor((f + p) / s), clamped into the output)
            own = tuple([b] + [min((fi + pad) // stride, so - 1) for fi, so in zip(f, out_shape)])
            assert own in cands
            sites.add(own)
    return sites, out_shape


@pytest.mark.parametrize('backend', ['spconv', 'torch'])
@pytest.mark.parametrize('ratio,pad', [(0.0, 1), (0.5, 1), (0.5, 0), (0.8, 1)])
@pytest.mark.parametrize('gemm', ['spconv', 'torch'])
def test_pruned_strided_conv_sites_values_and_pairs(backend, ratio, pad, gemm):
    shape = (9, 14, 12)
    idx, feats = _random_voxels(300, shape, seed=1)
    conv = SPSSSparseConv3d(8, 6, 3, stride=2, padding=pad, bias=False, prune_ratio=ratio)
    conv.rulebook_backend, conv.force_rulebook, conv.gemm_backend = backend, True, gemm
    with torch.no_grad():
        out = conv(SparseConvTensor(feats, idx, list(shape), 2))
    sites, out_shape = _expected_regular_sites(idx, conv.last_keep, shape, 3, 2, pad)
    got = [tuple(r) for r in out.indices.tolist()]
    assert len(got) == len(set(got))  # no colliding coordinates
    assert set(got) == sites
    assert list(out.spatial_shape) == out_shape
    assert (out.indices[:, 1:] >= 0).all()
    assert (out.indices[:, 1:] < torch.tensor(out_shape)).all()
    ref = _dense_at(idx, feats, shape, 2, conv.weight, out.indices, 2, pad)
    assert torch.allclose(out.features, ref, atol=1e-5)
    assert conv._last_pairs.tolist() == _brute_pairs(idx, out.indices, 3, 2, pad)


def test_keep_mask_is_per_sample():
    scores = torch.tensor([0.9, 0.1, 0.5, 0.3, 0.8, 0.2, 0.7])
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    keep = keep_mask(scores, batch, 0.5)
    # sample 0: floor(3 * .5) = 1 pruned (0.1); sample 1: 2 pruned (0.2, 0.3)
    assert keep.tolist() == [True, False, True, False, True, False, True]
    with pytest.raises(ValueError, match='prune_ratio'):
        SPSSSubMConv3d(4, 4, 3, padding=1, prune_ratio=1.0)
    with pytest.raises(ValueError, match='in_channels == out_channels'):
        SPSSSubMConv3d(4, 8, 3, padding=1, prune_ratio=0.5)


@pytest.fixture(scope='module')
def demo_encoder_inputs(synth_root):
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.apis.prune import calibration_batches
    cfg = demo_config('second', synth_root)
    model = build_detector(cfg)
    inputs = []
    with torch.no_grad():
        for batch in calibration_batches(cfg, 2, 'val'):
            vd = model.data_preprocessor(batch, False)['inputs']['voxels']
            feats = model.voxel_encoder(vd['voxels'], vd['num_points'], vd['coors'])
            inputs.append((feats, vd['coors'], 1))
    return cfg, model.middle_encoder.eval(), inputs


def _spss_encoder(cfg, dense_encoder, **kwargs):
    c = copy.deepcopy(cfg.model.middle_encoder)
    c.update(type='SPSSSparseEncoder', **kwargs)
    enc = MODELS.build(c)
    missing, unexpected = enc.load_state_dict(dense_encoder.state_dict(), strict=False)
    assert not unexpected and all('importance' in k for k in missing)
    return enc.eval()


def test_ratio_zero_equals_sparse_encoder(demo_encoder_inputs):
    cfg, dense, inputs = demo_encoder_inputs
    enc = _spss_encoder(cfg, dense, prune_ratios=0.0)
    forced = _spss_encoder(cfg, dense, prune_ratios=[0.0, 0.5, 0.5, 0.5])
    for m in forced.modules():  # the rulebook path with nothing pruned
        if isinstance(m, (SPSSSubMConv3d, SPSSSparseConv3d)):
            m.prune_ratio, m.force_rulebook = 0.0, True
    with torch.no_grad():
        for feats, coors, bs in inputs:
            ref = dense(feats, coors, bs)
            assert torch.equal(enc(feats, coors, bs), ref)
            assert torch.allclose(forced(feats, coors, bs), ref, atol=1e-4)


def test_encoder_counts_only_computed_pairs(demo_encoder_inputs):
    cfg, dense, inputs = demo_encoder_inputs
    enc = _spss_encoder(cfg, dense, prune_ratios=0.5)
    feats, coors, bs = inputs[0]
    with torch.no_grad(), FlopsCounter(enc) as pruned_count:
        enc(feats, coors, bs)
    with torch.no_grad(), FlopsCounter(dense) as dense_count:
        dense(feats, coors, bs)
    spss = {n: m for n, m in enc.named_modules()
            if isinstance(m, (SPSSSubMConv3d, SPSSSparseConv3d))}
    assert len(spss) == 10  # 1 + 3 + 3 + 3 encoder convs (conv_input changes channels)
    for name, m in spss.items():
        assert torch.equal(pruned_count.layers[name].pairs, m._last_pairs)
    assert pruned_count.total_macs() < 0.75 * dense_count.total_macs()


def test_min_prune_channels_keeps_narrow_convs_dense(demo_encoder_inputs):
    """Convs with fewer output channels than ``min_prune_channels`` stay spconv layers
    (the demo's 8- and 16-channel stages): their pairs are the dense encoder's, the wider stages'
    fewer; above every width nothing is pruned and the output equals the dense encoder's."""
    cfg, dense, inputs = demo_encoder_inputs
    enc = _spss_encoder(cfg, dense, prune_ratios=0.5, min_prune_channels=32)
    spss = [m for m in enc.modules() if isinstance(m, (SPSSSubMConv3d, SPSSSparseConv3d))]
    assert spss and all(m.out_channels >= 32 for m in spss)
    assert len(spss) == 6  # stages 3 and 4 (32 channels): a strided conv and two subm each
    feats, coors, bs = inputs[0]
    with torch.no_grad(), FlopsCounter(enc) as count:
        enc(feats, coors, bs)
    with torch.no_grad(), FlopsCounter(dense) as dense_count:
        ref = dense(feats, coors, bs)
    for name, st in count.layers.items():
        if st.module.out_channels < 32:
            assert torch.equal(st.pairs, dense_count.layers[name].pairs)
    none = _spss_encoder(cfg, dense, prune_ratios=0.5, min_prune_channels=1024)
    assert not any(isinstance(m, (SPSSSubMConv3d, SPSSSparseConv3d)) for m in none.modules())
    with torch.no_grad():
        assert torch.equal(none(feats, coors, bs), ref)


def test_learned_importance_gets_gradients(demo_encoder_inputs):
    cfg, dense, inputs = demo_encoder_inputs
    enc = _spss_encoder(cfg, dense, prune_ratios=0.5, importance='learned').train()
    feats, coors, bs = inputs[0]
    enc(feats, coors, bs).square().mean().backward()
    heads = [m for n, m in enc.named_modules() if n.endswith('importance.conv')]
    assert len(heads) == 10
    assert all(h.weight.grad is not None and h.weight.grad.abs().sum() > 0 for h in heads)


@pytest.mark.parametrize('num_voxels', [0, 1])
def test_empty_and_single_voxel_inputs(demo_encoder_inputs, num_voxels):
    cfg, dense, inputs = demo_encoder_inputs
    enc = _spss_encoder(cfg, dense, prune_ratios=0.5)
    with torch.no_grad():
        full_shape = enc(*inputs[0]).shape
    feats = torch.randn(num_voxels, 4)
    coors = torch.tensor([[0, 20, 100, 200]] * num_voxels, dtype=torch.int32).reshape(-1, 4)
    with torch.no_grad():
        out = enc(feats, coors, 1)
    assert out.shape == full_shape and torch.isfinite(out).all()
    if num_voxels == 0:
        assert not out.any()


def test_torchsparse_backend_degrades_with_a_clear_message(demo_encoder_inputs):
    cfg, _, _ = demo_encoder_inputs
    c = copy.deepcopy(cfg.model.middle_encoder)
    c.update(type='SPSSSparseEncoder', backend='torchsparse')
    with pytest.raises((ImportError, NotImplementedError), match='torchsparse'):
        MODELS.build(c)
    c.update(backend='minkowski')
    with pytest.raises(ValueError, match='unknown sparse backend'):
        MODELS.build(c)


def test_weight_pruning_skips_importance_predictors(synth_root):
    from conftest import REPO

    from dm3d_mm.apis import load_config
    from dm3d_mm.weight.discovery import find_prunable_layers
    cfg = load_config(f'{REPO}/configs/demo/second_synth-kitti_cpu_spss50.py',
                      data_root=synth_root)
    cfg.model.middle_encoder.importance = 'learned'
    model = MODELS.build(cfg.model)
    assert any(n.endswith('importance.conv') for n, _ in model.named_modules())
    layers = find_prunable_layers(model, parts=['middle_encoder'])
    assert not any('importance' in n for n in layers)
    assert any(isinstance(m, SPSSSubMConv3d) for m in layers.values())


def test_gemm_backends_agree_on_gradients():
    shape = (9, 14, 12)
    idx, feats = _random_voxels(300, shape, seed=3)
    grads = {}
    for gemm in ('spconv', 'torch'):
        torch.manual_seed(0)
        conv = SPSSSparseConv3d(8, 6, 3, stride=2, padding=1, bias=True, prune_ratio=0.5,
                                importance='learned')
        conv.gemm_backend = gemm
        f = feats.clone().requires_grad_(True)
        out = conv(SparseConvTensor(f, idx, list(shape), 2))
        (out.features * torch.arange(out.features.numel()).reshape(out.features.shape)
         .float().sin()).sum().backward()
        grads[gemm] = (f.grad, conv.weight.grad, conv.bias.grad,
                       conv.importance.conv.weight.grad)
    for a, b in zip(grads['spconv'], grads['torch']):
        assert torch.allclose(a, b, atol=1e-4)


def test_sparse_to_bev_matches_spconv_dense_values_and_gradients():
    """The channels-first BEV scatter equals dense().view(B, C*D, H, W), gradients included,
    with sites at coordinate 0 and at the far edges of two samples."""
    from dm3d_mm.spatial.bev_scatter import sparse_to_bev
    torch.manual_seed(0)
    shape = (3, 5, 7)
    sites = torch.tensor([[0, 0, 0, 0], [0, 2, 4, 6], [1, 0, 4, 6], [1, 2, 0, 0], [1, 1, 3, 2]])
    feats = torch.randn(len(sites), 4, requires_grad=True)
    x = SparseConvTensor(feats, sites.int(), list(shape), 2)
    ref = x.dense().reshape(2, 4 * 3, 5, 7)
    ours = sparse_to_bev(x)
    assert ours.shape == ref.shape and torch.equal(ours, ref)
    w = torch.randn_like(ref)
    g_ref, = torch.autograd.grad((ref * w).sum(), feats)
    g_ours, = torch.autograd.grad((ours * w).sum(), feats)
    assert torch.equal(g_ref, g_ours)


@pytest.mark.parametrize('backend', ['spconv', 'torch'])
def test_block_passthrough_skips_norm_and_act_for_pruned_voxels(backend):
    """SPSSBlock: kept voxels get relu(bn(conv)) of the full input, pruned voxels keep their
    input exactly (no norm, no activation); training-mode BN sees the kept voxels only."""
    from dm3d_mm.spatial import SPSSBlock
    shape = (9, 10, 11)
    idx, feats = _random_voxels(300, shape, seed=3)
    conv = SPSSSubMConv3d(8, 8, 3, padding=1, bias=False, indice_key='k', prune_ratio=0.5)
    conv.rulebook_backend = backend
    bn = torch.nn.BatchNorm1d(8)
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    block = SPSSBlock(conv, bn, torch.nn.ReLU(inplace=True)).eval()
    with torch.no_grad():
        out = block(SparseConvTensor(feats, idx, list(shape), 2)).features
    keep = conv.last_keep
    assert 0 < int(keep.sum()) < len(keep)
    ref = _dense_at(idx, feats, shape, 2, conv.weight, idx, 1, 1)
    ref = torch.relu(torch.nn.functional.batch_norm(ref, bn.running_mean, bn.running_var,
                                                    bn.weight, bn.bias, eps=bn.eps))
    assert torch.allclose(out[keep], ref[keep], atol=1e-4)
    assert torch.equal(out[~keep], feats[~keep])
    # training mode: batch statistics over the kept voxels only
    block.train()
    bn.reset_running_stats()
    bn.momentum = 1.0
    block(SparseConvTensor(feats, idx, list(shape), 2))
    conv_kept = _dense_at(idx, feats, shape, 2, conv.weight, idx[conv.last_keep], 1, 1)
    assert torch.allclose(bn.running_mean, conv_kept.mean(0), atol=1e-4)


def test_block_passthrough_encoder_wraps_blocks_and_keeps_keys(demo_encoder_inputs):
    from dm3d_mm.spatial import SPSSBlock
    cfg, dense, inputs = demo_encoder_inputs
    conv_mode = _spss_encoder(cfg, dense, prune_ratios=0.5, passthrough='conv')
    block_mode = _spss_encoder(cfg, dense, prune_ratios=0.5)  # the default
    assert block_mode.prune_ratios and not any(isinstance(m, SPSSBlock)
                                               for m in conv_mode.modules())
    assert set(block_mode.state_dict()) == set(conv_mode.state_dict())
    assert any(isinstance(m, SPSSBlock) for m in block_mode.modules())
    outs, counted = [], []
    for enc in (conv_mode, block_mode):
        with FlopsCounter(enc) as counter, torch.no_grad():
            outs.append([enc(*i) for i in inputs])
        counted.append(counter)
    for a, b in zip(*outs):
        assert a.shape == b.shape
    assert not torch.equal(outs[0][-1], outs[1][-1])
    # every conv is counted in block mode too (SPSSBlock calls its conv through its hooks)
    conv_c, block_c = counted
    assert set(block_c.layers) == set(conv_c.layers)
    # exact: each pruned subm conv of the block-mode encoder counts the pairs between its
    # input voxels and its kept outputs, nothing for the pruned ones
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            x = inputs[0]
            seen[name] = (x.indices.clone(), module.last_keep.clone())
        return hook
    handles = [m.register_forward_hook(record(n)) for n, m in block_mode.named_modules()
               if isinstance(m, SPSSSubMConv3d) and m.prune_ratio > 0]
    assert handles
    with FlopsCounter(block_mode) as one, torch.no_grad():
        block_mode(*inputs[0])
    for h in handles:
        h.remove()
    for name, (idx, keep) in seen.items():
        assert 0 < int(keep.sum()) < len(keep)
        want = _brute_pairs(idx, idx[keep], 3, 1, 1)
        assert one.layers[name].pairs.tolist() == want, name
    with pytest.raises(ValueError, match='passthrough'):
        _spss_encoder(cfg, dense, prune_ratios=0.5, passthrough='layer')
