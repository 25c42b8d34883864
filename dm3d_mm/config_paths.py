"""Config paths as the tools take them: a file, or ``pkg::rel/cfg.py`` in a package's shipped
configs (as mmdet3d names its own)."""
import os.path as osp

from .errors import MissingFile


def resolve_config_path(path: str) -> str:
    """A file path for ``path``; ``pkg::rel/cfg.py`` is looked up in the installed package's
    shipped configs (``.mim/configs`` in wheels, ``configs`` in source checkouts)."""
    if '::' in path:
        import importlib
        pkg, rel = path.split('::', 1)
        root = osp.dirname(importlib.import_module(pkg).__file__)
        for sub in ('.mim/configs', 'configs', osp.join('..', 'configs')):
            cand = osp.normpath(osp.join(root, sub, rel))
            if osp.isfile(cand):
                return cand
        raise MissingFile(f'config not found: {path} (looked in {pkg}\'s shipped configs)')
    if not osp.isfile(path):
        raise MissingFile(f'config not found: {path}')
    return path
