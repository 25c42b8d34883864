"""Distillation-aware recovery: a frozen dense teacher guides a pruned, spatially sparse or
slim student (the losses, the teacher, what one iteration records); the training hook is
:class:`~dm3d_mm.hooks.DistillationHook`."""
from .losses import (
                     AnchorHeadResponse,
                     BEVFeatureImitation,
                     CenterHeadResponse,
                     DistillLoss,
                     KDBatch,
                     build_distill_losses,
                     check_families,
                     head_confidence,
)
from .teacher import build_teacher, head_layout

__all__ = ['AnchorHeadResponse', 'BEVFeatureImitation', 'CenterHeadResponse', 'DistillLoss',
           'KDBatch', 'build_distill_losses', 'build_teacher', 'check_families',
           'head_confidence', 'head_layout']
