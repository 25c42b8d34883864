"""BiPointNet-style binarised encoders: the modules' forward and backward, EMA's shift gives
the binarised pooled output maximal entropy, LSR's initial scale is the norm ratio, the
binarised PillarFeatureNet with full-precision fallback equals mmdet3d's, and the bit-packed
export round-trips."""
import pytest
import torch

import dm3d_mm  # noqa: F401
from dm3d_mm.binary import (
    BinaryLinear,
    BinaryPillarFeatureNet,
    EMAMaxPool,
    ema_shift,
    pack_signs,
    packed_state_dict,
    sign_ste,
    unpack_signs,
    unpacked_state_dict,
)
from dm3d_mm.binary.ema import binary_entropy


def test_sign_ste_forward_and_clipped_gradient():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.5], requires_grad=True)
    y = sign_ste(x)
    assert y.tolist() == [-1, -1, 1, 1, 1]
    y.sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 0]


def test_binary_linear_forward_backward_and_lsr_scale_is_the_norm_ratio():
    torch.manual_seed(0)
    layer = BinaryLinear(16, 8)
    x = torch.randn(64, 16)
    full = x @ layer.weight.detach().T
    binary = torch.sign(x) @ torch.sign(layer.weight.detach()).T
    scale = layer.init_lsr(x)
    assert scale == pytest.approx(float(full.std() / binary.std()), rel=1e-6)
    assert bool(layer.lsr_ready)
    out = layer(x)
    assert torch.allclose(out, binary * scale, atol=1e-5)
    out.square().sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert layer.lsr_scale.grad is not None
    # the first training batch initialises the scale when init_lsr was not called
    fresh = BinaryLinear(16, 8).train()
    fresh.weight.data.copy_(layer.weight.data)
    fresh(x)
    assert float(fresh.lsr_scale.detach()) == pytest.approx(scale, rel=1e-6)
    # full-precision fallback is nn.Linear
    fresh.enabled = False
    assert torch.equal(fresh(x), torch.nn.functional.linear(x, fresh.weight))


@pytest.mark.parametrize('n', [4, 32, 100])
def test_ema_shift_maximises_the_entropy_of_the_binarised_max(n):
    g = torch.Generator().manual_seed(n)
    y = torch.randn(20000, n, generator=g)  # the known distribution: N(0, 1)
    plain = float((y.max(1).values >= 0).float().mean())
    shifted = float((EMAMaxPool(dim=1)(y, keepdim=False) >= 0).float().mean())
    assert binary_entropy(shifted) > 0.99  # one bit, whatever n
    assert binary_entropy(shifted) > binary_entropy(plain)
    # d* is the maximiser: a nearby shift gives less entropy
    for d in (ema_shift(n) - 0.3, ema_shift(n) + 0.3):
        p = float(((y - d).max(1).values >= 0).float().mean())
        assert binary_entropy(p) < binary_entropy(shifted)


def _pfn(**binary):
    kw = dict(in_channels=4, feat_channels=[16, 16], voxel_size=[0.16, 0.16, 4],
              point_cloud_range=[0, -10, -3, 20, 10, 1])
    from mmdet3d.models.voxel_encoders import PillarFeatureNet
    torch.manual_seed(0)
    ref = PillarFeatureNet(**kw).eval()
    binm = BinaryPillarFeatureNet(binary=binary, **kw).eval()
    missing, unexpected = binm.load_state_dict(ref.state_dict(), strict=False)
    assert not unexpected and all('lsr_' in k for k in missing)  # only the LSR additions
    return ref, binm


def _pillars(n=50, m=12):
    g = torch.Generator().manual_seed(1)
    feats = torch.rand(n, m, 4, generator=g) * torch.tensor([20.0, 20.0, 4.0, 1.0])
    feats[..., 1] -= 10
    feats[..., 2] -= 3
    num = torch.randint(1, m + 1, (n, ), generator=g)
    coors = torch.cat([torch.zeros(n, 1), torch.randint(0, 100, (n, 3), generator=g)], 1)
    return feats, num, coors.int()


def test_binarised_pfn_fallback_equals_mmdet3d_and_binarised_forward_backward():
    ref, fallback = _pfn(enabled=False)
    with torch.no_grad():  # fresh inputs per call: PillarFeatureNet edits its input in place
        assert torch.equal(ref(*_pillars()), fallback(*_pillars()))
    _, binm = _pfn()
    binm.train()
    out = binm(*_pillars())
    assert out.shape == ref(*_pillars()).shape
    out.square().sum().backward()
    layers = binm.binary_layers()
    assert all(bool(layer.lsr_ready) for layer in layers)
    assert all(layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
               for layer in layers)
    assert not layers[0].binarize_input and layers[1].binarize_input
    with pytest.raises(ValueError, match='unknown binary options'):
        BinaryPillarFeatureNet(in_channels=4, feat_channels=[16], binary=dict(emma=True))


def test_binarised_hard_vfe_fallback_equals_mmdet3d_and_binarised_forward_backward():
    from mmdet3d.models.voxel_encoders import HardVFE

    from dm3d_mm.binary import BinaryHardVFE
    kw = dict(in_channels=4, feat_channels=[16, 16], with_cluster_center=True,
              with_voxel_center=True, voxel_size=[0.2, 0.2, 4],
              point_cloud_range=[0, -10, -3, 20, 10, 1])
    torch.manual_seed(0)
    ref = HardVFE(**kw).eval()
    encoders = {}
    for name, binary in (('fallback', dict(enabled=False)), ('binary', {})):
        enc = BinaryHardVFE(binary=binary, **kw).eval()
        missing, unexpected = enc.load_state_dict(ref.state_dict(), strict=False)
        assert not unexpected and all('lsr_' in k for k in missing)
        encoders[name] = enc
    with torch.no_grad():
        assert torch.equal(ref(*_pillars()), encoders['fallback'](*_pillars()))
    binm = encoders['binary'].train()
    out = binm(*_pillars())
    assert out.shape == ref(*_pillars()).shape
    out.square().sum().backward()
    first, second = binm.binary_layers()
    assert not first.binarize_input and second.binarize_input
    assert bool(first.lsr_ready) and bool(second.lsr_ready)
    assert first.weight.grad.abs().sum() > 0 and second.weight.grad.abs().sum() > 0
    # the concatenating layer feeds signs: no ReLU, so both signs reach the next layer
    with torch.no_grad():
        feats = binm.vfe_layers[0](torch.randn(30, 12, first.in_features))
    assert (feats < 0).any() and (feats > 0).any()


def test_bit_packed_export_round_trips_and_is_32x_smaller():
    torch.manual_seed(0)
    w = torch.randn(33, 17)
    bits, shape = pack_signs(w)
    assert bits.dtype == torch.uint8 and bits.numel() == (33 * 17 + 7) // 8
    assert torch.equal(unpack_signs(bits, shape), torch.where(w >= 0, 1.0, -1.0))
    _, binm = _pfn()
    binm.train()(*_pillars())  # initialise the LSR scales
    binm.eval()
    sd = packed_state_dict(binm)
    restored = BinaryPillarFeatureNet(in_channels=4, feat_channels=[16, 16],
                                      voxel_size=[0.16, 0.16, 4],
                                      point_cloud_range=[0, -10, -3, 20, 10, 1]).eval()
    restored.load_state_dict(unpacked_state_dict(sd))
    with torch.no_grad():
        assert torch.allclose(binm(*_pillars()), restored(*_pillars()), atol=1e-5)
    fp_bytes = sum(m.weight.numel() * 4 for m in binm.binary_layers())
    packed_bytes = sum(v['bits'].numel() for k, v in sd.items() if k.endswith('packed_signs'))
    assert fp_bytes / packed_bytes >= 31


def test_dm3d_leaves_binarised_layers_out():
    from torch import nn

    from dm3d_mm.weight.discovery import find_prunable_layers

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            _, self.voxel_encoder = _pfn()
            self.backbone = nn.Conv2d(16, 8, 3)

    model = Tiny()
    ref = Tiny()
    ref.voxel_encoder = _pfn(enabled=False)[0]  # mmdet3d's full-precision encoder
    assert 'voxel_encoder.pfn_layers.0.linear' in find_prunable_layers(ref)
    assert list(find_prunable_layers(model)) == ['backbone']


def test_flops_counter_counts_binary_ops_and_their_mac_equivalent():
    from dm3d_mm.cost.counter import BOPS_PER_MAC, FlopsCounter
    from dm3d_mm.cost.report import flops_report
    _, binm = _pfn()
    feats, num, coors = _pillars(n=50, m=12)
    with torch.no_grad(), FlopsCounter(binm) as counter:
        binm(feats, num, coors)
        counter.add_frames(1)
    first, second = (counter.layers[f'pfn_layers.{i}.linear'] for i in (0, 1))
    # the first layer takes full-precision coordinates: real MACs; the second signs x signs
    assert not first.binary and first.bops() == 0
    assert first.macs() == 50 * 12 * first.module.in_features * first.module.out_features
    ops = 50 * 12 * second.module.in_features * second.module.out_features
    assert second.binary and second.bops() == ops
    assert second.macs() == pytest.approx(ops / BOPS_PER_MAC)
    report = flops_report(counter, binm)
    assert report['total_bops'] == ops
    assert report['total_effective_macs'] == pytest.approx(first.macs() + ops / 64)


def _lsr_worker(rank, world, init_file, out_dir):
    import os.path as osp

    import torch.distributed as tdist

    from dm3d_mm.binary import BinaryLinear
    tdist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                             world_size=world)
    try:
        torch.manual_seed(0)  # the same weights on both ranks, as DDP makes them
        layer = BinaryLinear(16, 8).train()
        x = torch.randn(64, 16, generator=torch.Generator().manual_seed(rank)) * (1 + 3 * rank)
        layer(x)  # each rank its own batch: the first forward sets the scale
        torch.save(dict(scale=float(layer.lsr_scale)), osp.join(out_dir, f'lsr{rank}.pt'))
    finally:
        tdist.destroy_process_group()


def test_lsr_scale_is_the_same_on_every_rank(tmp_path):
    """Each rank initialises LSR on its own first batch: the scales are averaged over the
    ranks, so DDP starts (and keeps) one scale; alone, the scale is the batch's own."""
    import torch.multiprocessing as mp

    from dm3d_mm.binary import BinaryLinear
    mp.spawn(_lsr_worker, args=(2, str(tmp_path / 'init'), str(tmp_path)), nprocs=2)
    got = [torch.load(tmp_path / f'lsr{r}.pt')['scale'] for r in (0, 1)]
    own = []
    for rank in (0, 1):
        torch.manual_seed(0)
        layer = BinaryLinear(16, 8).train()
        x = torch.randn(64, 16, generator=torch.Generator().manual_seed(rank)) * (1 + 3 * rank)
        own.append(layer.init_lsr(x))
    assert own[0] != pytest.approx(own[1], rel=1e-3)  # the ranks' batches disagree
    assert got[0] == got[1] == pytest.approx(sum(own) / 2, rel=1e-6)
