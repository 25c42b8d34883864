"""spconv backward on a CPU-only torch (dm3d_mm.compat) against a dense conv3d reference."""
import pytest
import spconv.pytorch as spconv
import torch
import torch.nn.functional as F

import dm3d_mm  # noqa: F401  (applies the fix)


def _random_sparse(n=60, shape=(8, 9, 10), channels=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    flat = torch.randperm(shape[0] * shape[1] * shape[2], generator=g)[:n]
    z = flat // (shape[1] * shape[2])
    y = (flat // shape[2]) % shape[1]
    x = flat % shape[2]
    idx = torch.stack([torch.zeros_like(z), z, y, x], 1).int()
    feats = torch.randn(n, channels, generator=g, dtype=torch.float32)
    return idx, feats


def _check_against_dense(kind, shape, idx, feats, channels_out=4):
    """spconv forward and backward equal a dense conv3d on the same active sites."""
    channels = feats.shape[1]
    feats = feats.clone().requires_grad_(True)
    if kind == 'subm':
        conv = spconv.SubMConv3d(channels, channels_out, 3, padding=1, bias=False,
                                 indice_key='k')
    else:
        conv = spconv.SparseConv3d(channels, channels_out, 3, stride=2, padding=1, bias=False)
    x = spconv.SparseConvTensor(feats, idx, list(shape), batch_size=1)
    out = conv(x)
    g = torch.Generator().manual_seed(1)
    r = torch.randn(out.features.shape, generator=g, dtype=torch.float32)
    (out.features * r).sum().backward()  # raised "Torch not compiled with CUDA" before
    assert conv.weight.grad is not None and feats.grad is not None

    # dense reference: same loss on the same active output sites
    d_feats = feats.detach().clone().requires_grad_(True)
    dense_in = torch.zeros(1, *shape, channels, dtype=torch.float32)
    dense_in = dense_in.index_put(
        (idx[:, 0].long(), idx[:, 1].long(), idx[:, 2].long(), idx[:, 3].long()), d_feats)
    w = conv.weight.detach().clone().requires_grad_(True)
    stride = 1 if kind == 'subm' else 2
    dense_out = F.conv3d(dense_in.permute(0, 4, 1, 2, 3), w.permute(0, 4, 1, 2, 3),
                         stride=stride, padding=1)
    oi = out.indices.long()
    picked = dense_out[oi[:, 0], :, oi[:, 1], oi[:, 2], oi[:, 3]]
    assert torch.allclose(picked, out.features.detach(), atol=1e-5)
    (picked * r).sum().backward()
    assert torch.allclose(conv.weight.grad, w.grad, atol=1e-4)
    assert torch.allclose(feats.grad, d_feats.grad, atol=1e-5)


@pytest.mark.parametrize('kind', ['subm', 'regular'])
def test_sparse_conv_backward_matches_dense(kind):
    shape = (8, 9, 10)
    idx, feats = _random_sparse(shape=shape)
    _check_against_dense(kind, shape, idx, feats)


@pytest.mark.parametrize('kind', ['subm', 'regular'])
def test_multithreaded_cpu_conv_is_exact_on_thousands_of_voxels(kind):
    """spconv's CPU gather-GEMM-scatter went wrong at a few sites per call with 2 threads."""
    shape = (21, 48, 48)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(2, threads))
    try:
        for seed in range(4):
            idx, feats = _random_sparse(n=3000, shape=shape, channels=8, seed=seed)
            _check_against_dense(kind, shape, idx, feats, channels_out=8)
    finally:
        torch.set_num_threads(threads)
