"""The frozen teacher: a detector built from its own config and checkpoint, in eval mode with
no parameter that takes a gradient, held outside the student's module tree (never in its
state dict, its optimizer or its checkpoint); and the check that its head has the student's
layout."""
import os.path as osp
from typing import Optional, Tuple

import torch
from mmengine.config import Config
from torch import nn

from ..config_paths import resolve_config_path
from ..errors import MissingFile, UserError
from ..weight.head_outputs.routes import detection_head


def head_layout(head: nn.Module) -> Tuple[str, Tuple]:
    """(family, layout) of a dense head: ``('center', classes per task)`` for a CenterHead,
    ``('anchor', (anchors per location, classes))`` for an Anchor3DHead, else
    ``('other', (class name,))``. A response distillation needs equal layouts."""
    from mmdet3d.models.dense_heads import Anchor3DHead, CenterHead
    if isinstance(head, CenterHead):
        return 'center', tuple(head.num_classes)
    if isinstance(head, Anchor3DHead):
        return 'anchor', (head.num_anchors, head.num_classes)
    return 'other', (type(head).__name__, )


def _voxel_layer(cfg_model) -> Optional[dict]:
    pre = cfg_model.get('data_preprocessor') or {}
    layer = pre.get('voxel_layer')
    return None if layer is None else {k: layer[k] for k in sorted(layer)}


def build_teacher(config: str, checkpoint: str, student: nn.Module,
                  student_cfg: Optional[Config] = None,
                  device: Optional[torch.device] = None) -> nn.Module:
    """The teacher detector of ``config`` with the weights of ``checkpoint`` (strictly
    loaded), on ``device``, in eval mode, every parameter frozen.

    Args:
        config (str): the teacher's config file (or ``pkg::rel/cfg.py``).
        checkpoint (str): its weights.
        student (nn.Module): the student detector (its head layout must match).
        student_cfg (Config, optional): the student's config: the teacher runs on the
            student's preprocessed inputs, so both must voxelize alike. Defaults to None
            (not checked).
        device (torch.device, optional): where the teacher runs. Defaults to the
            student's.

    Returns:
        nn.Module: the teacher.
    """
    from mmdet3d.registry import MODELS
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    if not osp.isfile(checkpoint):
        raise MissingFile(f'distillation teacher checkpoint not found: {checkpoint}')
    cfg = Config.fromfile(resolve_config_path(config))
    if student_cfg is not None and _voxel_layer(cfg.model) != _voxel_layer(student_cfg.model):
        raise UserError(f'distillation teacher {config} voxelizes otherwise than the student '
                        f'({_voxel_layer(cfg.model)} vs {_voxel_layer(student_cfg.model)}): '
                        'the teacher runs on the student\'s voxels')
    init_default_scope(cfg.get('default_scope', 'mmdet3d'))
    teacher = MODELS.build(cfg.model)
    load_checkpoint(teacher, checkpoint, map_location='cpu', strict=True, logger='silent')
    t_head, s_head = detection_head(teacher), detection_head(student)
    if head_layout(t_head) != head_layout(s_head) or head_layout(t_head)[0] == 'other':
        raise UserError(
            f'distillation teacher {config}: its head {type(t_head).__name__} '
            f'{head_layout(t_head)} does not match the student\'s {type(s_head).__name__} '
            f'{head_layout(s_head)} (the response distillation compares the heads\' outputs '
            'map for map: a CenterHead or Anchor3DHead of the same classes on both)')
    device = device or next(student.parameters()).device
    teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher
