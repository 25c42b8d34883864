"""Signs packed 8 per byte: the storage of a binarised layer's weight (its forward needs only
the signs)."""
from typing import Iterable, Tuple

import numpy as np
import torch
from torch import Tensor

PACKED_SUFFIX = '.packed_signs'


def pack_signs(weight: Tensor) -> Tuple[Tensor, Tuple[int, ...]]:
    """(uint8 tensor of the signs, 1 bit each, +1 -> 1; the weight's shape)."""
    bits = (weight.detach().reshape(-1) >= 0).cpu().numpy()
    return torch.from_numpy(np.packbits(bits)), tuple(weight.shape)


def unpack_signs(packed: Tensor, shape: Iterable[int]) -> Tensor:
    """The +-1 float tensor ``pack_signs`` packed."""
    shape = tuple(shape)
    n = int(np.prod(shape))
    bits = np.unpackbits(packed.cpu().numpy())[:n].astype(np.float32)
    return torch.from_numpy(bits * 2 - 1).reshape(shape)
