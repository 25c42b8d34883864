"""The pruner a config asks for."""
from mmengine.config import Config, ConfigDict

from ..registry import PRUNERS


def build_pruner(cfg: Config, **overrides):
    """The config's ``pruning`` dict (or DM3DPruner defaults) with overrides (None values
    ignored). ``calib`` is not the pruner's: see :func:`~.calib_frames.resolve_calib`. A
    joint re-rank that fine-tunes (``spatial=dict(rerank=...)``) gets the config's training
    set-up."""
    pcfg = ConfigDict(cfg.get('pruning', None) or dict(type='DM3DPruner', flops_target=0.5))
    pcfg.setdefault('type', 'DM3DPruner')
    for k, v in overrides.items():
        if v is not None:
            pcfg[k] = v
    pcfg.pop('calib', None)
    try:
        pruner = PRUNERS.build(pcfg)
    except TypeError as e:  # an unknown key of the pruning dict
        raise ValueError(f'pruning config: {e}') from None
    rerank = getattr(getattr(pruner, 'spatial', None), 'rerank', None)
    if rerank is not None:
        rerank.bind(cfg)
    return pruner
