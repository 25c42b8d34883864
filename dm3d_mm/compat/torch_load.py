"""Let mmengine < 0.11 load its own checkpoints under torch >= 2.6.

torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine 0.10's Runner saves a
message hub whose HistoryBuffer pickles bound methods (``getattr``), which no safe-load
allow-list can admit, so testing or resuming any Runner checkpoint fails; mmengine 0.11
fixed that. For exactly the versions that need it, this restores mmengine's behaviour from
before torch 2.6 for local files (full unpickling: load only checkpoints you trust, exactly
as with mmengine on older torch), and says so once in the log, at the first load.
"""
import os.path as osp

import torch

from ..errors import MissingFile

_said = False


def _version(text: str):
    return tuple(int(v) for v in text.split('+')[0].split('.')[:2])


def needs_full_unpickling(torch_version: str, mmengine_version: str) -> bool:
    """True for torch >= 2.6 with mmengine < 0.11."""
    return _version(torch_version) >= (2, 6) and _version(mmengine_version) < (0, 11)


def _load_local(filename, map_location=None):
    global _said
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise MissingFile(f'checkpoint not found: {filename}')
    if not _said:
        from mmengine.logging import print_log
        print_log('dm3d_mm: mmengine < 0.11 under torch >= 2.6 cannot safe-load its own '
                  'Runner checkpoints; local checkpoints are loaded with full unpickling '
                  '(load only checkpoints you trust)', logger='current')
        _said = True
    return torch.load(filename, map_location=map_location, weights_only=False)


def allow_mmengine_checkpoints() -> bool:
    """Register the local-file checkpoint loader above with mmengine when this torch and
    mmengine need it; True when done."""
    import mmengine
    if not needs_full_unpickling(torch.__version__, mmengine.__version__):
        return False
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=_load_local, force=True)
    return True
