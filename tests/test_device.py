"""CPU and CUDA give the same pair counts, SPSS outputs and DM3D pass: every geometry tensor
lives on the indices' device. Skipped without a GPU (run it on one when you have it)."""
import pytest
import torch
from spconv.pytorch import SparseConvTensor

import dm3d_mm  # noqa: F401
from dm3d_mm.flops import FlopsCounter, count_pairs
from dm3d_mm.spatial import SPSSSparseConv3d, SPSSSubMConv3d

from test_spatial_spss import _random_voxels

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')


def test_pair_counts_equal_on_cpu_and_cuda():
    idx, _ = _random_voxels(3000, (12, 40, 40))
    fine = idx.long()
    for args in [((3, 3, 3), 1, 1, 1), ((3, 3, 3), 2, 1, 1), ((3, 1, 1), (2, 1, 1), 0, 1)]:
        cpu = count_pairs(fine, fine, *args)
        gpu = count_pairs(fine.cuda(), fine.cuda(), *args)
        assert torch.equal(cpu, gpu.cpu())


@pytest.mark.parametrize('cls,kw', [(SPSSSubMConv3d, dict(padding=1, indice_key='k')),
                                    (SPSSSparseConv3d, dict(stride=2, padding=1))])
def test_spss_outputs_and_counted_pairs_equal_on_cpu_and_cuda(cls, kw):
    idx, feats = _random_voxels(2000, (12, 40, 40))
    torch.manual_seed(0)
    conv = cls(8, 8, 3, bias=False, prune_ratio=0.5, **kw).eval()
    outs = {}
    for dev in ('cpu', 'cuda'):
        m = conv.to(dev)
        x = SparseConvTensor(feats.to(dev), idx.to(dev), [12, 40, 40], 2)
        with torch.no_grad(), FlopsCounter(m) as counter:
            y = m(x)
        order = torch.argsort(y.indices[:, 0].long() * 10**8 + y.indices[:, 1].long() * 10**5
                              + y.indices[:, 2].long() * 300 + y.indices[:, 3].long())
        outs[dev] = (y.indices[order].cpu(), y.features[order].cpu(),
                     next(iter(counter.layers.values())).pairs)
    assert torch.equal(outs['cpu'][0], outs['cuda'][0])
    assert torch.allclose(outs['cpu'][1], outs['cuda'][1], atol=1e-4)
    assert torch.equal(outs['cpu'][2], outs['cuda'][2])


def test_dm3d_prunes_the_demo_second_on_cuda(synth_root):
    from dm3d_mm.apis.flops import build_detector
    from dm3d_mm.apis.prune import calibration_batches
    from dm3d_mm.weight import DM3DPruner

    from conftest import REPO, demo_config
    cfg = demo_config('second', synth_root)
    batches = calibration_batches(cfg, 2, 'train')
    res = {}
    for dev in ('cpu', 'cuda'):
        model = build_detector(cfg, REPO + '/checkpoints/second_synth-kitti_cpu.pth', dev)
        res[dev] = DM3DPruner(0.5, num_ratios=8, progress=False).prune(model, batches)
    assert res['cuda'].macs_before == pytest.approx(res['cpu'].macs_before, rel=1e-9)
    assert res['cuda'].macs_after <= 0.5 * res['cuda'].macs_before
