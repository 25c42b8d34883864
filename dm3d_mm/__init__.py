"""dm3d_mm: joint spatial + weight (DM3D) sparsity for mmdet3d detectors.

Importing the package registers its modules in mmdet3d's registries (configs load it with
``custom_imports = dict(imports=['dm3d_mm'])``) and applies the CPU fixes of
:mod:`dm3d_mm.compat` when CUDA is absent.
"""
from .compat import apply_all

apply_all()

# the fixes above are in place before mmdet3d's modules are imported through these
from . import (  # noqa: E402,F401
    apis,
    binary,
    cost,
    datasets,
    distill,
    hooks,
    joint,
    models,
    pruning,
    spatial,
    structured,
    weight,
)

__version__ = '0.1.0'
