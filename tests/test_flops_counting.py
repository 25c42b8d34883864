"""Joint FLOPs: pair counts and MACs against brute-force enumeration and closed forms."""
import itertools

import numpy as np
import pytest
import spconv.pytorch as spconv
import torch
from torch import nn

import dm3d_mm  # noqa: F401
from dm3d_mm.cost import FlopsCounter
from dm3d_mm.cost.layouts import offset_view


def brute_pairs(fine, coarse, ks, stride, pad, dil=1):
    """{offset index: [(fine row, coarse row)]} by enumerating neighbour sets."""
    fine_pos = {tuple(r): i for i, r in enumerate(fine.tolist())}
    offsets = list(itertools.product(range(ks), repeat=3))
    out = {k: [] for k in range(len(offsets))}
    for j, c in enumerate(coarse.tolist()):
        for k, off in enumerate(offsets):
            f = (c[0],) + tuple(c[a + 1] * stride - pad + off[a] * dil for a in range(3))
            if f in fine_pos:
                out[k].append((fine_pos[f], j))
    return out


def brute_regular_outputs(fine, ks, stride, pad, shape):
    out_shape = [(s + 2 * pad - ks) // stride + 1 for s in shape]
    outs = set()
    for f in fine.tolist():
        for off in itertools.product(range(ks), repeat=3):
            num = [f[a + 1] + pad - off[a] for a in range(3)]
            if all(n % stride == 0 for n in num):
                c = [n // stride for n in num]
                if all(0 <= c[a] < out_shape[a] for a in range(3)):
                    outs.add((f[0], *c))
    return outs


def random_voxels(n, shape, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    rows = set()
    while len(rows) < n:
        rows.add((int(rng.integers(batch)), *(int(rng.integers(s)) for s in shape)))
    idx = torch.tensor(sorted(rows), dtype=torch.int32)
    return idx


def lidar_voxels(voxel=0.4):
    """Voxels of a synthetic LiDAR frame (batch 0), coordinates z, y, x."""
    from dm3d_mm.datasets import SyntheticKittiConfig, generate_frame
    pts, _ = generate_frame(SyntheticKittiConfig(seed=3), 0)
    lo = np.array([0, -25.6, -3.0])
    keep = (pts[:, 0] < 51.2) & (np.abs(pts[:, 1]) < 25.6) & (pts[:, 2] > -3) & (pts[:, 2] < 1)
    v = np.floor((pts[keep, :3] - lo) / voxel).astype(np.int64)
    v = np.unique(v, axis=0)
    idx = np.concatenate([np.zeros((len(v), 1), np.int64), v[:, ::-1]], 1)
    shape = [int(np.ceil(4 / voxel)), int(51.2 / voxel), int(51.2 / voxel)]
    return torch.tensor(idx, dtype=torch.int32), shape


def _check(layer_stats, brute, weight_rows):
    expect = torch.tensor([len(brute[k]) for k in range(len(brute))])
    assert torch.equal(layer_stats.pairs, expect)
    # MACs = brute-force sum over pairs of the non-zero weights at that offset
    nnz = (weight_rows != 0).sum(1)
    assert layer_stats.macs() == int(sum(len(brute[k]) * int(nnz[k]) for k in brute))


@pytest.mark.parametrize('read', ['native', 'coordinates'])
@pytest.mark.parametrize('source', ['random', 'lidar'])
def test_sparse_conv_pairs_match_brute_force(source, read, monkeypatch):
    """Both ways of counting: read from the rulebook spconv's native CPU conv ran, and
    enumerated from the coordinates (what runs where there is none to read)."""
    from dm3d_mm.cost import counter as counter_module
    from dm3d_mm.sparse.native_rulebook import call_pair_counts
    read_calls = []

    def reading(*args):
        read_calls.append(call_pair_counts(*args))
        return read_calls[-1] if read == 'native' else None

    monkeypatch.setattr(counter_module, 'call_pair_counts', reading)
    if source == 'random':
        shape = [9, 14, 13]
        idx = random_voxels(300, shape)
        batch = 2
    else:
        idx, shape = lidar_voxels()
        batch = 1
    feats = torch.randn(len(idx), 4)
    x = spconv.SparseConvTensor(feats, idx, shape, batch)
    torch.manual_seed(0)
    net = spconv.SparseSequential(
        spconv.SubMConv3d(4, 5, 3, padding=1, bias=False, indice_key='s1'),
        spconv.SparseConv3d(5, 6, 3, stride=2, padding=1, bias=False, indice_key='d1'),
        spconv.SubMConv3d(6, 6, 3, padding=1, bias=True, indice_key='s2'),
        spconv.SparseInverseConv3d(6, 3, 3, indice_key='d1', bias=False))
    with torch.no_grad():  # sparsify some offsets so nnz differs per offset
        for m in net:
            w = offset_view(m, m.weight.data)
            w[torch.rand(w.shape) < 0.4] = 0
    with FlopsCounter(net) as counter:
        y = net(x)
    sub1, down, sub2, inv = (counter.layers[str(i)] for i in range(4))
    fine = idx.long()
    _check(sub1, brute_pairs(fine, fine, 3, 1, 1), offset_view(net[0], net[0].weight))
    # spconv's own output sites equal the geometric definition
    coarse_expect = brute_regular_outputs(fine, 3, 2, 1, shape)
    mid = net[1](net[0](x))
    assert {tuple(r) for r in mid.indices.tolist()} == coarse_expect
    coarse = mid.indices.long()
    _check(down, brute_pairs(fine, coarse, 3, 2, 1), offset_view(net[1], net[1].weight))
    _check(sub2, brute_pairs(coarse, coarse, 3, 1, 1), offset_view(net[2], net[2].weight))
    _check(inv, brute_pairs(fine, coarse, 3, 2, 1), offset_view(net[3], net[3].weight))
    assert sub2.bias_flops == len(coarse) * 6
    assert {tuple(r) for r in y.indices.tolist()} == {tuple(r) for r in fine.tolist()}
    assert sub1.sites_in == sub1.sites_out == len(fine)
    assert down.sites_out == len(coarse)
    # every layer here (keyed spconv convs on the CPU) has spconv's rulebook to read
    assert len(read_calls) == 4 and all(c is not None for c in read_calls)


def test_macs_follow_per_offset_masks_exactly():
    idx = random_voxels(200, [8, 10, 10], batch=1, seed=5)
    conv = spconv.SubMConv3d(3, 4, 3, padding=1, bias=False, indice_key='a')
    x = spconv.SparseConvTensor(torch.randn(len(idx), 3), idx, [8, 10, 10], 1)
    with FlopsCounter(conv) as counter:
        conv(x)
    st = counter.layers['']
    brute = brute_pairs(idx.long(), idx.long(), 3, 1, 1)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        mask = (torch.rand(conv.weight.shape, generator=g) < 0.5).float()
        rows = offset_view(conv, mask)
        expect = sum(len(brute[k]) * int(rows[k].sum()) for k in brute)
        assert st.macs(mask) == expect
    assert st.macs(torch.zeros_like(conv.weight)) == 0
    assert st.dense_macs == sum(len(v) for v in brute.values()) * 3 * 4


def test_candidate_costs_from_the_kept_per_offset_table_equal_the_masks_costs():
    """A layer's candidate costs (the pairs times the weights each candidate keeps per
    offset, ``kept_per_offset``, one table for every cost model) equal the MACs of each
    candidate's mask, exactly, for a sparse, a strided and a dense conv."""
    from dm3d_mm.cost.cost_model import CostModel, kept_per_offset
    from dm3d_mm.cost.layouts import mask_at
    idx = random_voxels(300, [8, 12, 12], batch=1, seed=7)
    net = spconv.SparseSequential(
        spconv.SubMConv3d(3, 8, 3, padding=1, bias=False, indice_key='a'),
        spconv.SparseConv3d(8, 6, 3, stride=2, padding=1, bias=False))
    dense = nn.Conv2d(6, 5, 3, padding=1, bias=False)
    x = spconv.SparseConvTensor(torch.randn(len(idx), 3), idx, [8, 12, 12], 1)
    model = nn.ModuleDict(dict(net=net, dense=dense))
    with FlopsCounter(model) as counter:
        dense(net(x).dense().sum(2))
        counter.add_frames(1)
    names = ['net.0', 'net.1', 'dense']
    cm = CostModel(counter, names)
    g = torch.Generator().manual_seed(1)
    for n in names:
        w = cm.layers[n].module.weight
        order = torch.randperm(w.numel(), generator=g)
        counts = torch.tensor([0, 1, w.numel() // 3, w.numel() // 2, w.numel() - 1, w.numel()])
        kept = kept_per_offset(cm.layers[n].module, order, counts)
        assert kept.shape == (len(counts), offset_view(cm.layers[n].module).shape[0])
        costs = cm.curve_costs(n, order, counts, kept)
        assert torch.equal(costs, cm.curve_costs(n, order, counts))
        for k, c in enumerate(counts.tolist()):
            assert float(costs[k]) == cm.layer_macs(n, mask_at(w, order, c)), (n, c)


def test_dense_layers_equal_closed_form():
    net = nn.Sequential(
        nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False),
        nn.ConvTranspose2d(8, 6, 2, stride=2),
    )
    lin = nn.Linear(10, 7)
    conv1d = nn.Conv1d(5, 3, 3)
    x = torch.randn(2, 4, 12, 16)
    with FlopsCounter(net) as c1:
        net(x)
    with FlopsCounter(lin) as c2:
        lin(torch.randn(3, 4, 10))
    with FlopsCounter(conv1d) as c3:
        conv1d(torch.randn(2, 5, 20))
    L = c1.layers
    assert L['0'].macs() == 2 * 6 * 8 * 8 * 4 * 9
    assert L['0'].bias_flops == 2 * 8 * 6 * 8
    assert L['3'].macs() == 2 * 6 * 8 * 8 * (8 // 2) * 9
    assert L['4'].macs() == 2 * 6 * 8 * 8 * 6 * 4  # transposed: input pixels x Cin x Cout x k^2
    assert c1.aux['1'].flops == 2 * (2 * 8 * 6 * 8)
    assert c1.aux['2'].flops == 2 * 8 * 6 * 8
    assert c2.layers[''].macs() == 12 * 10 * 7
    assert c3.layers[''].macs() == 2 * 18 * 5 * 3 * 3
    with torch.no_grad():
        lin.weight[:, :5] = 0
    assert c2.layers[''].macs() == 12 * 5 * 7


def test_memoised_pair_counts_equal_fresh_ones_and_tell_site_sets_apart():
    """The memo of pair counts hands back exactly what enumeration gives, and a site set that
    differs in one voxel (or another geometry) is counted afresh, not read from the memo."""
    from dm3d_mm.cost import pairs
    torch.manual_seed(0)
    sites = torch.unique(torch.cat([torch.zeros(400, 1, dtype=torch.int32),
                                    torch.randint(0, 12, (400, 3), dtype=torch.int32)], 1),
                         dim=0)
    pairs._memo.clear()
    for args in [((3, 3, 3), 1, 1, 1), ((3, 3, 3), 2, 1, 1)]:
        fresh = pairs.count_pairs(sites, sites, *args, memo=False)
        assert torch.equal(pairs.count_pairs(sites, sites, *args), fresh)  # stored
        assert torch.equal(pairs.count_pairs(sites, sites, *args), fresh)  # read back
    assert len(pairs._memo) == 2
    moved = sites.clone()
    moved[0, 3] = (moved[0, 3] + 1) % 12  # one voxel elsewhere (possibly onto another)
    moved = torch.unique(moved, dim=0)
    want = pairs.count_pairs(moved, moved, (3, 3, 3), 1, 1, 1, memo=False)
    assert torch.equal(pairs.count_pairs(moved, moved, (3, 3, 3), 1, 1, 1), want)
    assert not torch.equal(want, pairs.count_pairs(sites, sites, (3, 3, 3), 1, 1, 1))
    assert len(pairs._memo) == 3
