"""Bit-packed storage of binary weights: 8 signs per byte (a 32x saving on float32).

Only the signs matter for a binarised layer's forward, so an export keeps ``sign(W)`` packed
and drops the full-precision weights; everything else of the state_dict stays as it is.
BinaryLinear unpacks them when it loads, so a packed checkpoint loads like any other
(mmengine's ``load_from``, ``tools/test.py``).
"""
import os
import os.path as osp
from typing import Dict, Optional

import torch
from torch import Tensor

from .layers import BinaryLinear
from .signs import PACKED_SUFFIX, pack_signs, unpack_signs


def packed_state_dict(model: torch.nn.Module) -> Dict[str, object]:
    """The model's state_dict with the weight of every enabled BinaryLinear replaced by its
    packed signs (key ``<layer>.packed_signs``: dict(bits, shape))."""
    sd = dict(model.state_dict())
    for name, m in model.named_modules():
        if isinstance(m, BinaryLinear) and m.enabled:
            bits, shape = pack_signs(m.weight)
            del sd[f'{name}.weight']
            sd[name + PACKED_SUFFIX] = dict(bits=bits, shape=shape)
    return sd


def unpacked_state_dict(sd: Dict[str, object]) -> Dict[str, Tensor]:
    """A loadable state_dict from ``packed_state_dict``: each packed weight becomes its +-1
    tensor (the binarised forward is unchanged: sign(+-1) = +-1)."""
    out = {}
    for key, value in sd.items():
        if key.endswith(PACKED_SUFFIX):
            weight = unpack_signs(value['bits'], value['shape'])
            out[key[:-len(PACKED_SUFFIX)] + '.weight'] = weight
        else:
            out[key] = value
    return out


def save_packed_checkpoint(model: torch.nn.Module, path: str,
                           meta: Optional[dict] = None) -> int:
    """Write ``dict(state_dict=packed_state_dict(model), meta=...)`` to ``path`` (through a
    temporary file, so an existing checkpoint is never left half-written); returns its size
    in bytes."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = path + '.tmp'
    torch.save(dict(state_dict=packed_state_dict(model),
                    meta=dict(meta or {}, binary_weights='bit-packed signs')), tmp)
    os.replace(tmp, path)
    return osp.getsize(path)
