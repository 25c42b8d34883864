"""dm3d_mm's own registry (pruners); hooks and model modules go into mmdet3d's registries."""
from mmengine.registry import Registry

PRUNERS = Registry('pruner', locations=['dm3d_mm.weight'])
