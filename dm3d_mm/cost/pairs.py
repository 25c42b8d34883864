"""Exact (input, output) voxel pair counts per kernel offset of a sparse convolution."""
import torch

from ..sparse.rulebook import rulebook


def count_pairs(fine: torch.Tensor, coarse: torch.Tensor, kernel_size, stride=1,
                padding=0, dilation=1) -> torch.Tensor:
    """Pairs per kernel offset between fine and coarse site sets (rows: batch, z, y, x).

    Returns a (K,) int64 tensor; its sum is the number of multiply-accumulate *vectors*
    (each costs nnz(W_k) MACs).
    """
    book = rulebook(fine, coarse, kernel_size, stride, padding, dilation)
    return torch.tensor([len(f) for f, _ in book], dtype=torch.long)
