"""Conv2d over a sparse BEV map: outputs only where the input is active (submanifold-style,
so pruned pixels stay zero through the 2D backbone) and FLOPs counted over active pixels."""
import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import nn


def active_pixels(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) float mask of the pixels with any non-zero channel."""
    return (x != 0).any(1, keepdim=True).to(x.dtype)


@MODELS.register_module()
class SparseBEVConv2d(nn.Conv2d):
    """nn.Conv2d whose output is masked to the active input pixels (max-pooled by the stride).

    ``flops_pairs`` reports, per kernel offset, the (active input, active output) pixel
    pairs, so the joint FLOPs of the 2D backbone follow the BEV sparsity.
    """

    def _out_mask(self, mask: torch.Tensor) -> torch.Tensor:
        if self.stride == (1, 1):
            return mask
        return F.max_pool2d(mask, kernel_size=self.stride, stride=self.stride,
                            ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        mask = self._out_mask(active_pixels(x))[..., :out.shape[-2], :out.shape[-1]]
        return out * mask

    def flops_pairs(self, inputs, output) -> torch.Tensor:
        x = inputs[0]
        mask_in = active_pixels(x)
        mask_out = self._out_mask(mask_in)[..., :output.shape[-2], :output.shape[-1]]
        kh, kw = self.kernel_size
        # one one-hot kernel per offset: conv of the input mask counts, at every output
        # position, whether the input under that offset is active
        eye = torch.eye(kh * kw, dtype=x.dtype, device=x.device).reshape(kh * kw, 1, kh, kw)
        hits = F.conv2d(mask_in, eye, stride=self.stride, padding=self.padding,
                        dilation=self.dilation)
        return (hits * mask_out).sum((0, 2, 3)).round().long().cpu()
