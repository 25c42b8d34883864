"""Let mmengine 0.10 load its own checkpoints under torch>=2.6.

torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine 0.10's Runner saves a
message hub whose HistoryBuffer pickles bound methods (``getattr``), which no safe-load
allow-list can admit, so testing or resuming any Runner checkpoint fails. This restores
mmengine's behaviour from before torch 2.6 for local files (full unpickling: load only
checkpoints you trust, exactly as with mmengine on older torch).
"""
import os.path as osp

import torch


def _load_local(filename, map_location=None):
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint not found: {filename}')
    return torch.load(filename, map_location=map_location, weights_only=False)


def allow_mmengine_checkpoints() -> bool:
    """Register the local-file checkpoint loader above with mmengine; True when done."""
    if tuple(int(v) for v in torch.__version__.split('+')[0].split('.')[:2]) < (2, 6):
        return False
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=_load_local, force=True)
    return True
