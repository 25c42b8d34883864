"""The pruner a config asks for: one builder for ``tools/prune.py``, the benchmarks and
``DM3DPruningHook``."""
import inspect
from typing import Optional

from mmengine.config import Config, ConfigDict

from ..errors import UserError
from ..registry import PRUNERS

DEFAULT_PRUNING = dict(type='DM3DPruner', flops_target=0.5)


def pruning_section(cfg: Config, pruning: Optional[dict] = None) -> ConfigDict:
    """The ``pruning`` dict in force: ``pruning`` if given (a hook's ``pruner=``), else the
    config's top-level ``pruning``, else ``DEFAULT_PRUNING``; ``type`` defaults to
    ``DM3DPruner``."""
    pcfg = ConfigDict(pruning or cfg.get('pruning', None) or DEFAULT_PRUNING)
    pcfg.setdefault('type', 'DM3DPruner')
    return pcfg


def check_keys(cls: type, given: dict, where: str) -> None:
    """A :class:`UserError` naming the keys of ``given`` that ``cls`` does not take (its
    ``__init__`` signature) and those it needs but ``given`` lacks."""
    signature = inspect.signature(cls.__init__).parameters
    params = {n: p for n, p in signature.items()
              if n != 'self' and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    missing = [n for n, p in params.items() if p.default is p.empty and n not in given]
    if missing:
        raise UserError(f'{where}: {cls.__name__} needs {missing} (e.g. '
                        f"pruning=dict(flops_target=0.5) in the config, or --flops-target)"
                        if 'flops_target' in missing else
                        f'{where}: {cls.__name__} needs {missing}')
    if any(p.kind is p.VAR_KEYWORD for p in signature.values()):
        return
    unknown = sorted(set(given) - set(params) - {'type', '_scope_'})
    if unknown:
        raise UserError(f'{where}: unknown key(s) {unknown} of {cls.__name__}; it takes '
                        f'{list(params)}')


def build_pruner(cfg: Config, pruning: Optional[dict] = None, **overrides):
    """The pruner of ``pruning_section(cfg, pruning)`` with ``overrides`` (None values
    ignored). ``calib`` is not the pruner's: see :func:`~.calib_frames.resolve_calib`. A
    joint re-rank that fine-tunes (``spatial=dict(rerank=...)``) gets the config's training
    set-up.

    Args:
        cfg (Config): the detector's config (its ``pruning`` section and training set-up).
        pruning (dict, optional): a pruning section that replaces the config's (a
            ``DM3DPruningHook(pruner=...)``). Defaults to None.
        **overrides: pruner arguments that replace the section's (command-line flags).

    Returns:
        DM3DPruner: the pruner (or whatever ``type`` names).
    """
    pcfg = pruning_section(cfg, pruning)
    for k, v in overrides.items():
        if v is not None:
            pcfg[k] = v
    pcfg.pop('calib', None)
    cls = PRUNERS.get(pcfg['type'])
    if cls is None:
        raise UserError(f"pruning config: unknown type {pcfg['type']!r}; known: "
                        f'{sorted(PRUNERS.module_dict)}')
    check_keys(cls, pcfg, 'pruning config')
    pruner = PRUNERS.build(pcfg)
    rerank = getattr(getattr(pruner, 'spatial', None), 'rerank', None)
    if rerank is not None:
        rerank.bind(cfg)
    return pruner
