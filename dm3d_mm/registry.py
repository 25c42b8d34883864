"""dm3d_mm's own registries, scoped ``dm3d_mm``.

Hooks and model modules go into mmdet3d's registries (``HOOKS``, ``MODELS``). The pieces
below are dm3d_mm's own swappable parts, selected in a config by ``type=``:

- ``PRUNERS``: weight pruners (``DM3DPruner``);
- ``HEAD_OUTPUTS``: head-output extractors, one per detector family (the output y that
  DM3D's distortion is measured on).

They are roots of their own trees with scope ``dm3d_mm``, and every build runs in that
scope. Without that, a build inside an mmdet3d Runner (default scope ``mmdet3d``) looks for
an ``mmdet3d`` registry in the pruner tree and warns that it found none.
"""
from mmengine.registry import Registry, build_from_cfg

SCOPE = 'dm3d_mm'


def build_in_scope(cfg, registry, default_args=None):
    """mmengine's build_from_cfg with the registry's own scope unless ``_scope_`` is set."""
    cfg = dict(cfg)
    cfg.setdefault('_scope_', SCOPE)
    return build_from_cfg(cfg, registry, default_args)


def build_piece(cfg, registry: Registry, what: str, instance_of: tuple = ()):
    """A registered piece from its name or a ``dict(type=...)`` config (an instance of
    ``instance_of`` is returned as it is); an unknown name is a one-line ValueError."""
    if instance_of and isinstance(cfg, instance_of):
        return cfg
    cfg = dict(type=cfg) if isinstance(cfg, str) else dict(cfg)
    if cfg.get('type') not in registry.module_dict:
        raise ValueError(f"unknown {what} {cfg.get('type')!r}; known: "
                         f'{sorted(registry.module_dict)}')
    return registry.build(cfg)


PRUNERS = Registry('pruner', scope=SCOPE, build_func=build_in_scope,
                   locations=['dm3d_mm.weight'])
HEAD_OUTPUTS = Registry('head_output', scope=SCOPE, build_func=build_in_scope,
                        locations=['dm3d_mm.weight.head_outputs'])
