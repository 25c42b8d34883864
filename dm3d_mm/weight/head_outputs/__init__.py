"""The detector output y = [p_b; p_c] that DM3D's distortion is measured on (Eq. 2).

One registered extractor per head family (``HEAD_OUTPUTS``), chosen automatically from the
model's detection head and overridable in the pruning config::

    pruning = dict(type='DM3DPruner', flops_target=0.25,
                   head_outputs=dict(type='CenterHeadOutputs', box_weighting='none'))

Each extractor runs the detector up to its dense head (``routes``: which head, fed by which
features) and splits the head's raw outputs into box terms p_b and class confidence p_c.
"""
from .anchor import AnchorHeadOutputs, ShapeAwareHeadOutputs
from .base import (
                   BOX_WEIGHTINGS,
                   DEFAULT_LAMBDAS,
                   HeadOutputs,
                   build_head_outputs,
                   weighted_distortion,
)
from .center import CenterHeadOutputs
from .routes import detection_head, head_features

__all__ = ['AnchorHeadOutputs', 'ShapeAwareHeadOutputs', 'CenterHeadOutputs', 'HeadOutputs',
           'BOX_WEIGHTINGS', 'DEFAULT_LAMBDAS', 'build_head_outputs', 'weighted_distortion',
           'detection_head', 'head_features']
