"""Config helpers shared by the tools: work dirs and re-pointing data paths."""
import argparse
import os
import os.path as osp
from typing import Any, Dict, Optional, Sequence

from mmengine.config import Config, ConfigDict

from ..config_paths import resolve_config_path
from ..errors import MissingKey, UserError
from ..pruning.calib_frames import SPLITS, innermost


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
    evaluator ann files) at ``data_root`` instead.

    Args:
        cfg (Config): the config (changed in place).
        data_root (str): the new root.

    Returns:
        Config: ``cfg``.
    """
    old = cfg.get('data_root', None)
    if old is None:
        raise MissingKey('the config has no top-level data_root to replace')
    new = data_root.rstrip('/') + '/'
    if old == new:
        return cfg
    for key in list(cfg.keys()):
        cfg[key] = _retarget(cfg[key], old, new)
    return cfg


def set_ann_files(cfg: Config, files: Dict[str, str]) -> Config:
    """Name each split's info file, relative to the data root, in its dataloader's dataset
    (through dataset wrappers such as CBGS) and in its evaluator: for info files made under
    other names than the config's (mmdet3d's ``create_data.py --extra-tag``, its test
    samples' ``nus_info.pkl``).

    Args:
        cfg (Config): the config (changed in place).
        files (dict[str, str]): split ('train', 'val', 'test') -> info file name.
    """
    for split, name in files.items():
        if split not in SPLITS:
            raise UserError(f'--ann-file: unknown split {split!r} (use {", ".join(SPLITS)})')
        loader = cfg.get(f'{split}_dataloader', None)
        if not loader:
            raise MissingKey(f'--ann-file {split}=...: the config has no {split}_dataloader')
        ds = innermost(loader['dataset'])
        if 'ann_file' not in ds:
            raise MissingKey(f'--ann-file {split}=...: {split}_dataloader has no dataset with an '
                           'ann_file')
        ds['ann_file'] = name
        root = ds.get('data_root', cfg.get('data_root', '')) or ''
        evaluators = cfg.get(f'{split}_evaluator', None) if split != 'train' else None
        for ev in evaluators if isinstance(evaluators, list) else [evaluators]:
            if ev and 'ann_file' in ev:
                ev['ann_file'] = osp.join(root, name)
    return cfg


def parse_ann_files(items: Optional[Sequence[str]]) -> Dict[str, str]:
    """``['test=nus_info.pkl', ...]`` -> ``{'test': 'nus_info.pkl'}`` (ValueError on a bad
    item)."""
    out = {}
    for item in items or []:
        split, sep, name = item.partition('=')
        if not sep or not name:
            raise UserError(f'--ann-file takes SPLIT=FILE, got {item!r}')
        out[split] = name
    return out


def add_data_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--data-root`` and ``--ann-file``: point a config's data at the user's copy."""
    parser.add_argument('--data-root', help="re-point the config's data paths here")
    parser.add_argument('--ann-file', nargs='+', metavar='SPLIT=FILE',
                        help='info file of a split under the data root, where it is named '
                             "otherwise than in the config (e.g. test=nus_info.pkl)")
    return parser


def load_config(path: str, cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None, launcher: str = 'none',
                data_root: Optional[str] = None,
                ann_files: Optional[Dict[str, str]] = None) -> Config:
    """Config.fromfile plus the usual command-line overrides of mmdet3d's tools.

    Args:
        path (str): the config file (``pkg::rel/cfg.py`` for a package's shipped configs).
        cfg_options (dict, optional): overrides merged into the config.
        work_dir (str, optional): the work dir (default: ``./work_dirs/<config name>``).
        launcher (str): the launcher. Defaults to 'none'.
        data_root (str, optional): re-point every data path under the config's data root.
        ann_files (dict[str, str], optional): split -> info file name (see
            :func:`set_ann_files`).
    """
    path = resolve_config_path(path)
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if data_root is not None:
        set_data_root(cfg, data_root)
    if ann_files:
        set_ann_files(cfg, ann_files)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def add_runner_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments mmdet3d's train/test tools share (--cfg-options, --data-root,
    --ann-file, --launcher, --local-rank).

    Args:
        parser (ArgumentParser): the tool's parser (extended in place and returned).
    """
    from mmengine.config import DictAction
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    add_data_args(parser)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def parse_runner_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse the command line, with ``LOCAL_RANK`` set from ``--local-rank`` for launchers.

    Args:
        parser (ArgumentParser): a parser with :func:`add_runner_args`' arguments.
    """
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def config_from_args(args) -> Config:
    """The config a train / test tool's arguments name (see :func:`load_config`).

    Args:
        args (Namespace): parsed :func:`add_runner_args` arguments with ``config`` and
            ``work_dir``.
    """
    return load_config(args.config, args.cfg_options, args.work_dir, args.launcher,
                       args.data_root, parse_ann_files(args.ann_file))
