"""Config helpers shared by the tools: work dirs and re-pointing data paths."""
import argparse
import os
import os.path as osp
from typing import Any, Optional

from mmengine.config import Config, ConfigDict


def _retarget(node: Any, old: str, new: str) -> Any:
    if isinstance(node, str):
        return new + node[len(old):] if node.startswith(old) else node
    if isinstance(node, (dict, ConfigDict)):
        for key in list(node.keys()):
            node[key] = _retarget(node[key], old, new)
        return node
    if isinstance(node, list):
        return [_retarget(v, old, new) for v in node]
    if isinstance(node, tuple):
        return tuple(_retarget(v, old, new) for v in node)
    return node


def set_data_root(cfg: Config, data_root: str) -> Config:
    """Point every path under the config's ``data_root`` (datasets, GT database,
    evaluator ann files) at ``data_root`` instead."""
    old = cfg.get('data_root', None)
    if old is None:
        raise KeyError('the config has no top-level data_root to replace')
    new = data_root.rstrip('/') + '/'
    if old == new:
        return cfg
    for key in list(cfg.keys()):
        cfg[key] = _retarget(cfg[key], old, new)
    return cfg


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
        raise FileNotFoundError(f'config not found: {path} (looked in {pkg}\'s shipped configs)')
    if not osp.isfile(path):
        raise FileNotFoundError(f'config not found: {path}')
    return path


def load_config(path: str, cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None, launcher: str = 'none',
                data_root: Optional[str] = None) -> Config:
    """Config.fromfile plus the usual command-line overrides of mmdet3d's tools."""
    path = resolve_config_path(path)
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if data_root is not None:
        set_data_root(cfg, data_root)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def add_runner_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments mmdet3d's train/test tools share (--cfg-options, --launcher, ...)."""
    from mmengine.config import DictAction
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--data-root', help='re-point every data path of the config here')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def parse_runner_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def config_from_args(args) -> Config:
    return load_config(args.config, args.cfg_options, args.work_dir, args.launcher,
                       args.data_root)
