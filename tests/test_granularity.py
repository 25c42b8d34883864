"""Structured DM3D: whole kernel offsets as pruning groups (distortion of a group's removal
equals the explicit quadratic form, the DP meets the budget with group costs, masks are whole
offsets), and a bad granularity is a clear error."""
import copy
import os.path as osp

import pytest
import spconv.pytorch as spconv
import torch
from conftest import REPO, demo_config
from torch import nn

import dm3d_mm  # noqa: F401
from dm3d_mm.cost.cost_model import offset_ids
from dm3d_mm.structured.granularity import build_granularity
from dm3d_mm.weight import distortion_curve
from dm3d_mm.weight.curves import taylor_scores

SECOND_CKPT = osp.join(REPO, 'checkpoints/second_synth-kitti_cpu.pth')


@pytest.mark.parametrize('layer', [nn.Conv2d(3, 4, 3), spconv.SubMConv3d(3, 4, 3),
                                   nn.ConvTranspose2d(3, 4, 2, stride=2)])
def test_offset_groups_and_their_distortion_equal_the_quadratic_form(layer):
    g = torch.Generator().manual_seed(0)
    d = layer.weight.numel()
    w = torch.randn(layer.weight.shape, generator=g)
    layer.weight.data.copy_(w)
    grads = torch.randn(7, d, generator=g)
    gran = build_granularity('offset')
    ids = offset_ids(layer)
    num_offsets = int(ids.max()) + 1
    order, counts = gran.order_and_counts(layer, taylor_scores(layer.weight, grads), 4)
    # every candidate removes whole offsets, least important (summed score) first
    assert counts[0] == 0 and counts[-1] == d
    scores = torch.zeros(num_offsets, dtype=torch.float64).index_add_(
        0, ids, taylor_scores(layer.weight, grads))
    for n in counts.tolist():
        removed = set(ids[order[:n]].tolist())
        assert n == sum(int((ids == o).sum()) for o in removed)
        if removed and len(removed) < num_offsets:
            kept = set(range(num_offsets)) - removed
            assert max(scores[list(removed)]) <= min(scores[list(kept)])
    kappa = 0.2
    c = distortion_curve(layer.weight, grads, 4, 'fisher', kappa, order=order, counts=counts)
    F = kappa * torch.eye(d, dtype=torch.float64) + grads.double().T @ grads.double() / 7
    flat = w.reshape(-1).double()
    for k, n in enumerate(counts.tolist()):
        dw = torch.zeros(d, dtype=torch.float64)
        dw[order[:n]] = -flat[order[:n]]
        assert float(c.distortion[k]) == pytest.approx(float(dw @ F @ dw), rel=1e-9,
                                                       abs=1e-12)


def test_offset_pruning_of_second_meets_the_budget_with_whole_offsets(synth_root):
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.apis.prune import calibration_batches
    from dm3d_mm.pruning import DM3DPruner
    cfg = demo_config('second', synth_root)
    batches = calibration_batches(cfg, frames=2, split='train')
    model = build_detector(cfg, SECOND_CKPT)
    pruner = DM3DPruner(0.6, num_ratios=8, parts=['middle_encoder', 'backbone', 'neck'],
                        granularity={'middle_encoder.*': 'offset', 'backbone.*': 'offset'},
                        progress=False)
    res = pruner.prune(model, batches)
    assert res.macs_after <= 0.6 * res.macs_before and res.achieved_ratio > 0.45
    modules = dict(model.named_modules())
    structured = 0
    for name, mask in res.masks.items():
        if name.startswith(('middle_encoder', 'backbone')):
            ids = offset_ids(modules[name])
            flat = mask.reshape(-1)
            for o in ids.unique():
                block = flat[ids == o]
                assert bool(block.all()) or not bool(block.any())  # whole offsets only
            structured += int((~flat).any())
    assert structured > 0
    # the reported cost equals a fresh count of the pruned model
    cm = pruner.cost_model(model, batches, list(res.masks))
    assert cm.total() == pytest.approx(res.macs_after, rel=1e-9)


def test_bad_granularities_are_clear_errors():
    from dm3d_mm.pruning import DM3DPruner
    with pytest.raises(ValueError, match='unknown granularity'):
        DM3DPruner(0.5, granularity='filter')
    with pytest.raises(ValueError, match="needs method='dm3d'"):
        DM3DPruner(0.5, method='lamp', granularity='offset')


def _sparse_input(seed=0, n=300, shape=(12, 20, 20)):
    g = torch.Generator().manual_seed(seed)
    idx = torch.stack([torch.randint(0, s, (n, ), generator=g) for s in shape], 1)
    idx = torch.unique(idx, dim=0)
    idx = torch.cat([torch.zeros(len(idx), 1, dtype=torch.long), idx], 1).int()
    return spconv.SparseConvTensor(torch.randn(len(idx), 8, generator=g), idx, list(shape), 1)


def test_offset_skipping_convs_equal_the_masked_convs():
    """A conv with whole offsets zeroed gives the same output (values and sites) whether
    spconv runs every offset or the swapped layer skips the removed ones, and the swap only
    touches layers with a removed offset."""
    from dm3d_mm.structured.offset_skip import (
        OffsetSkippingSparseConv3d,
        OffsetSkippingSubMConv3d,
        skip_pruned_offsets,
    )
    torch.manual_seed(0)
    net = spconv.SparseSequential(
        spconv.SubMConv3d(8, 8, 3, padding=1, bias=False, indice_key='s1'),
        spconv.SubMConv3d(8, 8, 3, padding=1, bias=True, indice_key='s1'),
        spconv.SparseConv3d(8, 16, 3, stride=2, padding=1, bias=False),
        spconv.SubMConv3d(16, 16, 3, padding=1, bias=False, indice_key='s2'))
    for i in (0, 1, 2):  # whole offsets removed in three layers, the last stays dense
        w = net[i].weight.data
        drop = torch.randperm(27)[:12 + 3 * i]
        w.view(w.shape[0], 27, w.shape[-1])[:, drop] = 0
    x = _sparse_input()
    with torch.no_grad():
        ref = net(x)
    assert skip_pruned_offsets(net) == ['0', '1', '2']
    assert isinstance(net[0], OffsetSkippingSubMConv3d)
    assert isinstance(net[2], OffsetSkippingSparseConv3d)
    assert type(net[3]) is spconv.SubMConv3d
    with torch.no_grad():
        out = net(_sparse_input())
    assert torch.equal(out.indices, ref.indices) and out.spatial_shape == ref.spatial_shape
    assert torch.allclose(out.features, ref.features, atol=1e-5, rtol=1e-5)
    # the same state_dict keys: a masked checkpoint loads as is
    assert list(net.state_dict()) == ['0.weight', '1.weight', '1.bias', '2.weight', '3.weight']
    # spconv's loop gets each kept offset's own pair count and 0 for a removed one (so it
    # skips it): checked against the decoded rulebook
    from dm3d_mm.sparse.native_rulebook import indice_data, regular_rulebook, subm_rulebook
    from dm3d_mm.structured.offset_skip import kept_offsets, skipping_counts
    x = _sparse_input()
    for conv, subm in ((net[0], True), (net[2], False)):
        kept = kept_offsets(conv)
        full = (subm_rulebook(x, conv) if subm else regular_rulebook(x, conv)[1]).counts()
        want = full * kept
        if subm:
            want[13] = 0  # the centre is computed apart
        got = skipping_counts(indice_data(x, conv, subm), kept, subm)
        assert got.tolist() == want.tolist() and 0 < int(got.sum()) < int(full.sum())
    # and it trains: the kept weights get the masked conv's gradients
    ref_net = copy.deepcopy(net)
    for m in ref_net:
        m.__class__ = spconv.SubMConv3d if m.subm else spconv.SparseConv3d
    grads = []
    for model in (net, ref_net):
        model.zero_grad()
        model(_sparse_input()).features.square().sum().backward()
        grads.append([m.weight.grad * (m.weight != 0) for m in model])
    assert all(torch.allclose(a, b, atol=1e-4, rtol=1e-4) for a, b in zip(*grads))


def test_kept_offsets_read_either_spconv_weight_layout_and_legacy_convs_stay_plain():
    """Offsets are read through the one layout helper: the same kept offsets from spconv's
    default (out, *kernel, in) and legacy (*kernel, in, out) weight of one conv; a legacy
    conv is not swapped for an offset-skipping twin (which runs the default layout)."""
    import spconv.pytorch as spconv

    from dm3d_mm.structured.offset_skip import kept_offsets, skip_pruned_offsets
    conv = spconv.SubMConv3d(4, 6, 3, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.randn_like(conv.weight))
        conv.weight[:, 0, 1] = 0  # offsets (0, 1, *) removed: rulebook ids 3, 4, 5
        conv.weight[:, 2, 2, 2] = 0  # offset 26
    kept = kept_offsets(conv)
    assert kept.tolist() == [k not in (3, 4, 5, 26) for k in range(27)]
    legacy = spconv.SubMConv3d(4, 6, 3, bias=False)
    legacy.weight = torch.nn.Parameter(conv.weight.detach().permute(1, 2, 3, 4, 0).clone())
    assert torch.equal(kept_offsets(legacy), kept)
    net = spconv.SparseSequential(conv, legacy)
    assert skip_pruned_offsets(net) == ['0']
    assert type(net[1]) is spconv.SubMConv3d
