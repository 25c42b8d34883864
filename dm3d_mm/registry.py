"""dm3d_mm's own registries, scoped ``dm3d_mm``.

Hooks and model modules go into mmdet3d's registries (``HOOKS``, ``MODELS``). The pieces
below are dm3d_mm's own swappable parts, selected in a config by ``type=``; every one of
them is defined here, and the modules named in ``locations`` register their entries:

- ``PRUNERS``: weight pruners (``DM3DPruner``);
- ``HEAD_OUTPUTS``: head-output extractors, one per detector family (the output y that
  DM3D's distortion is measured on);
- ``ESTIMATORS``: per-layer distortion curves (``fisher``, ``taylor2``, ``actual``);
- ``ALLOCATORS``: sparsity allocations under a budget (DM3D's ``dm3d`` DP, ``uniform``,
  ``global_magnitude``, ``lamp``, ``erk``), each declaring the constraints it honours;
- ``GRANULARITIES``: what is pruned together (``weight``, ``offset``, ``channel``);
- ``CHANNEL_GRAPHS``: which convs of a detector part share a channel width;
- ``BUDGET_COSTS``: what a budget counts (``flops``, ``latency``);
- ``SITE_FINDERS``: the spatial pruning sites of a detector whose keep ratios the joint
  allocation chooses (Ada3D locations, SPSS encoder stages);
- ``SPATIAL_SEARCHES``: which combinations of keep ratios the joint allocation counts
  (``grid``: every one; ``coordinate``: coordinate descent over the sites);
- ``JOINT_OBJECTIVES``: what the joint allocation minimises over the combinations
  (``sum``: spatial + weight distortion; ``saturating_weight``);
- ``JOINT_RERANKS``: how the joint allocation's best combinations are re-ranked before one
  is chosen (``finetune_probe``: a short fine-tune of each);
- ``DISTILL_LOSSES``: the losses a dense teacher adds to a student's training
  (``center_head_response``, ``anchor_head_response``, ``bev_feature``);
- ``BENCHES``: the benchmarks ``tools/bench.py NAME`` runs.

They are roots of their own trees with scope ``dm3d_mm``, and every build runs in that
scope. Without that, a build inside an mmdet3d Runner (default scope ``mmdet3d``) looks for
an ``mmdet3d`` registry in the pruner tree and warns that it found none.
"""
from mmengine.registry import Registry, build_from_cfg

from .errors import UserError

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
        raise UserError(f"unknown {what} {cfg.get('type')!r}; known: "
                         f'{sorted(registry.module_dict)}')
    return registry.build(cfg)


PRUNERS = Registry('pruner', scope=SCOPE, build_func=build_in_scope,
                   locations=['dm3d_mm.pruning'])
HEAD_OUTPUTS = Registry('head_output', scope=SCOPE, build_func=build_in_scope,
                        locations=['dm3d_mm.weight.head_outputs'])
ESTIMATORS = Registry('estimator', scope=SCOPE, build_func=build_in_scope,
                      locations=['dm3d_mm.weight.estimators'])
ALLOCATORS = Registry('allocator', scope=SCOPE, build_func=build_in_scope,
                      locations=['dm3d_mm.weight.allocators'])
GRANULARITIES = Registry('granularity', scope=SCOPE, build_func=build_in_scope,
                         locations=['dm3d_mm.structured.granularity'])
CHANNEL_GRAPHS = Registry('channel_graph', scope=SCOPE, build_func=build_in_scope,
                          locations=['dm3d_mm.structured.channel_graph'])
BUDGET_COSTS = Registry('budget_cost', scope=SCOPE, build_func=build_in_scope,
                       locations=['dm3d_mm.cost.budget_cost'])
SITE_FINDERS = Registry('site_finder', scope=SCOPE, build_func=build_in_scope,
                         locations=['dm3d_mm.joint.sites'])
SPATIAL_SEARCHES = Registry('spatial_search', scope=SCOPE, build_func=build_in_scope,
                            locations=['dm3d_mm.joint.spatial_search'])
JOINT_OBJECTIVES = Registry('joint_objective', scope=SCOPE, build_func=build_in_scope,
                            locations=['dm3d_mm.joint.objective'])
JOINT_RERANKS = Registry('joint_rerank', scope=SCOPE, build_func=build_in_scope,
                         locations=['dm3d_mm.joint.rerank'])
DISTILL_LOSSES = Registry('distill_loss', scope=SCOPE, build_func=build_in_scope,
                          locations=['dm3d_mm.distill.losses'])
BENCHES = Registry('bench', scope=SCOPE, build_func=build_in_scope,
                   locations=['dm3d_mm.benches'])
