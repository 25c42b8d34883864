"""Pruned checkpoints: plain mmengine checkpoints with zeros in the weights, and the masks,
allocation and provenance under ``meta['dm3d']`` (ignored by plain mmdet3d)."""
import hashlib
import os
import os.path as osp
from typing import Dict, Optional

import torch
from mmengine.runner.checkpoint import get_state_dict, save_checkpoint, weights_to_cpu

from ..errors import WouldOverwrite

META_KEY = 'dm3d'


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def save_pruned_checkpoint(path: str, model: torch.nn.Module, masks: Dict[str, torch.Tensor],
                           info: Dict, source: Optional[str] = None,
                           base_meta: Optional[Dict] = None) -> str:
    """Write atomically; refuses to overwrite the checkpoint it was pruned from."""
    if source is not None and osp.exists(path) and osp.samefile(path, source):
        raise WouldOverwrite(f'refusing to overwrite the input checkpoint {source}; '
                              'choose another --work-dir / output path')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    meta = dict(base_meta or {})
    meta[META_KEY] = dict(info, masks={n: m.cpu() for n, m in masks.items()},
                          source=source, source_sha256=file_sha256(source) if source else None)
    tmp = path + '.tmp'
    state = weights_to_cpu(get_state_dict(model))
    save_checkpoint(dict(state_dict=state, meta=meta), tmp)  # mmengine's writer, then an
    os.replace(tmp, path)                                      # atomic rename
    return path


def read_dm3d_meta(checkpoint: Dict) -> Optional[Dict]:
    """The dm3d section of a loaded checkpoint dict, or None for a dense checkpoint."""
    return (checkpoint.get('meta') or {}).get(META_KEY)
