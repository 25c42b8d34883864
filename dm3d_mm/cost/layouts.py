"""Per-kernel-offset views of layer weights: rows are kernel offsets, columns the weights
that one (input site, output site) pair at that offset multiplies. MACs of a layer are then
sum_k pairs_k * nnz(row_k), for sparse convs, dense convs and linear layers alike."""
import torch
from torch import Tensor, nn

try:  # spconv is the sparse-conv backend mmdet3d uses when installed
    from spconv.pytorch.conv import SparseConvolution as _SpconvConv
except ImportError:  # pragma: no cover - spconv is a hard dependency on CPU installs
    _SpconvConv = ()

try:
    from mmcv.ops.sparse_conv import SparseConvolution as _MmcvSparseConv
except ImportError:  # pragma: no cover
    _MmcvSparseConv = ()

DENSE_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
DENSE_DECONV = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
SPARSE_CONV = tuple(t for t in (_SpconvConv, _MmcvSparseConv) if isinstance(t, type))
PRUNABLE = DENSE_CONV + DENSE_DECONV + (nn.Linear, ) + SPARSE_CONV


def is_sparse_conv(module: nn.Module) -> bool:
    return bool(SPARSE_CONV) and isinstance(module, SPARSE_CONV)


def kernel_volume(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return 1
    ks = module.kernel_size
    ks = (ks, ) * 3 if isinstance(ks, int) else tuple(ks)
    vol = 1
    for k in ks:
        vol *= int(k)
    return vol


def spconv_default_layout(module: nn.Module) -> bool:
    """Whether an spconv conv's weight is in spconv 2.x's default layout (out, *kernel, in);
    False for its legacy (*kernel, in, out)."""
    w = module.weight
    return w.dim() == 5 and w.shape[0] == module.out_channels \
        and w.shape[-1] == module.in_channels


def offset_view(module: nn.Module, tensor: torch.Tensor = None) -> torch.Tensor:
    """(K, N) view of ``tensor`` (default: the module's weight) with one row per offset."""
    w = module.weight if tensor is None else tensor
    if isinstance(module, nn.Linear):
        return w.reshape(1, -1)
    k = kernel_volume(module)
    if _SpconvConv and isinstance(module, _SpconvConv):
        # spconv 2.x: (out, *kernel, in) by default; (*kernel, in, out) in its legacy layout
        if spconv_default_layout(module):
            return w.permute(1, 2, 3, 0, 4).reshape(k, -1)
        return w.reshape(k, -1)
    if _MmcvSparseConv and isinstance(module, _MmcvSparseConv):
        return w.reshape(k, -1)  # mmcv: (*kernel, in, out)
    # torch convs: (out, in/groups, *kernel) and transposed (in, out/groups, *kernel)
    return w.reshape(w.shape[0], w.shape[1], k).permute(2, 0, 1).reshape(k, -1)


def out_channel_axis(layer: nn.Module) -> int:
    """The weight axis of output channels: 0 for convs and spconv's (out, *kernel, in)
    layout, 1 for transposed convs (in, out, *kernel), the last for mmcv's sparse convs."""
    if isinstance(layer, nn.modules.conv._ConvTransposeNd):
        return 1
    if is_sparse_conv(layer) and layer.weight.shape[0] != layer.out_channels:
        return layer.weight.dim() - 1  # mmcv: (*kernel, in, out)
    return 0


def in_channel_axis(layer: nn.Module) -> int:
    """The weight axis of input channels (see :func:`out_channel_axis`)."""
    if isinstance(layer, nn.modules.conv._ConvTransposeNd):
        return 0
    if is_sparse_conv(layer):
        w = layer.weight
        return w.dim() - 1 if w.shape[0] == layer.out_channels else w.dim() - 2
    return 1


def _kept_along(mask: Tensor, axis: int) -> Tensor:
    dims = [d for d in range(mask.dim()) if d != axis]
    return mask.any(dim=dims) if dims else mask


def kept_out_channels(layer: nn.Module, mask: Tensor) -> Tensor:
    """(C_out,) bool: the output channels of ``layer`` its weight mask keeps any entry of."""
    return _kept_along(mask, out_channel_axis(layer))


def kept_in_channels(layer: nn.Module, mask: Tensor) -> Tensor:
    """(C_in,) bool: the input channels of ``layer`` its weight mask keeps any entry of."""
    return _kept_along(mask, in_channel_axis(layer))


def mask_at(weight: Tensor, order: Tensor, count: int) -> Tensor:
    """Binary mask (weight's shape) pruning the first ``count`` weights of ``order``."""
    mask = torch.ones(weight.numel(), dtype=torch.bool, device=weight.device)
    mask[order[:count].to(weight.device)] = False
    return mask.reshape(weight.shape)
