"""The detector output y = [p_b; p_c] that DM3D's distortion is measured on (Eq. 2).

mmdet3d's tensor-mode forward returns the head outputs before decoding and NMS. They are
split into box terms p_b (regression, direction) and class confidence p_c (sigmoid of the
class logits / heatmaps), flattened per frame and weighted by lambda = (lambda_b, lambda_c):
the distortion is lambda_b ||dp_b||^2 + lambda_c ||dp_c||^2.

Box weighting: the box terms of a dense head exist at every anchor / BEV location, and almost
all of them are background whose boxes never become detections, yet they dominate ||dp_b||^2
(on the demo SECOND ~500x the class-confidence energy). With ``box_weighting='confidence'``
(the default) each anchor's box terms are scaled by sqrt of its own (detached) best class
confidence, so the distortion counts box changes where the head actually detects something.
``'none'`` is the paper's plain Eq. 2.

Two-stage detectors (PV-RCNN, Part-A2): y is the first stage's (RPN head's) dense output. The
pruned parts (3D encoder, 2D backbone, neck) all feed it, and the RoI stage behind it depends
on them only through proposals picked by NMS (not differentiable) and, for PV-RCNN, through
point ops that mmcv implements for CUDA only.
"""
from typing import List, Tuple

import torch
from torch import Tensor, nn


def _flat(tensors: List[Tensor], batch: int) -> Tensor:
    if not tensors:
        return torch.zeros(batch, 0)
    return torch.cat([t.reshape(batch, -1) for t in tensors], 1)


def is_two_stage(model: nn.Module) -> bool:
    return getattr(model, 'rpn_head', None) is not None and hasattr(model, 'roi_head')


def detection_head(model: nn.Module) -> nn.Module:
    """The dense head whose outputs y are: bbox_head / pts_bbox_head, or a two-stage
    detector's rpn_head."""
    for attr in ('bbox_head', 'pts_bbox_head', 'rpn_head'):
        head = getattr(model, attr, None)
        if head is not None:
            return head
    raise TypeError(f'{type(model).__name__} has no bbox_head / pts_bbox_head / rpn_head: DM3D '
                    'needs a dense detection head (Anchor3DHead, CenterHead and friends)')


BOX_WEIGHTINGS = ('confidence', 'none')
# Class confidence only by default: on the demo SECOND, DM3D before fine-tuning reached val
# mAP (moderate, 3D AP40) 64.0 at 33 % FLOPs with lambda = (0, 1), against 61.0 with
# (0.03, 1), 57.0 with (0.12, 1) and 53.9 with (1, 1) (confidence-weighted boxes), and 47.7
# with the paper's plain (1, 1); at 25 % (0, 1) and (0.12, 1) were within 1.1 points.
DEFAULT_LAMBDAS = (0.0, 1.0)


def _anchor_weighted(maps: Tensor, conf: Tensor) -> Tensor:
    """Scale (B, A*k, H, W) per-anchor box maps by sqrt of the (B, A, H, W) confidence."""
    b, ak, h, w = maps.shape
    a = conf.shape[1]
    return (maps.reshape(b, a, ak // a, h, w) * conf.sqrt()[:, :, None]).reshape(b, ak, h, w)


def split_head_outputs(model: nn.Module, outs, batch: int,
                       box_weighting: str = 'confidence') -> Tuple[Tensor, Tensor]:
    """(p_b, p_c), each (batch, D), from the tensor-mode outputs of the model's head."""
    if box_weighting not in BOX_WEIGHTINGS:
        raise ValueError(f'box_weighting must be one of {BOX_WEIGHTINGS}, got {box_weighting!r}')
    weigh = box_weighting == 'confidence'
    head = detection_head(model)
    boxes, scores = [], []
    if hasattr(head, 'task_heads'):  # CenterHead: per level, per task, dict of maps
        for level in outs:
            for task in level:
                heat = task['heatmap'].sigmoid()
                scores.append(heat)
                conf = heat.detach().max(1, keepdim=True).values
                for key, value in task.items():
                    if key != 'heatmap':
                        boxes.append(value * conf.sqrt() if weigh else value)
    elif hasattr(head, 'conv_cls') and isinstance(outs, (tuple, list)) and len(outs) >= 2:
        cls_scores, bbox_preds = outs[0], outs[1]
        dir_preds = outs[2] if len(outs) > 2 and outs[2] is not None else [None] * len(bbox_preds)
        num_classes = head.num_classes
        for cls, box, dirs in zip(cls_scores, bbox_preds, dir_preds):
            prob = cls.sigmoid()
            scores.append(prob)
            level = [box] + ([dirs] if dirs is not None else [])
            if weigh:
                b, ac, h, w = prob.shape
                conf = prob.detach().reshape(b, ac // num_classes, num_classes, h, w).amax(2)
                level = [_anchor_weighted(t, conf) for t in level]
            boxes.extend(level)
    else:
        raise NotImplementedError(
            f'cannot split the outputs of {type(head).__name__} into box and class terms; '
            'supported: Anchor3DHead-style heads (conv_cls/conv_reg) and CenterHead')
    return _flat(boxes, batch), _flat(scores, batch)


def forward_outputs(model: nn.Module, batch: dict,
                    box_weighting: str = 'confidence') -> Tuple[Tensor, Tensor]:
    """Tensor-mode forward of one collated batch: (p_b, p_c)."""
    data = model.data_preprocessor(batch, training=False)
    if is_two_stage(model):  # first stage only (see the module docstring)
        feats = model.extract_feat(data['inputs'])
        x = feats.get('neck_feats', feats) if isinstance(feats, dict) else feats
        outs = model.rpn_head(x)
    else:
        outs = model(**data, mode='tensor')
    return split_head_outputs(model, outs, len(data['data_samples']), box_weighting)


def weighted_distortion(ref: Tuple[Tensor, Tensor], new: Tuple[Tensor, Tensor],
                        lambdas=DEFAULT_LAMBDAS) -> Tensor:
    """Per-frame lambda_b ||p_b - p_b'||^2 + lambda_c ||p_c - p_c'||^2."""
    (b0, c0), (b1, c1) = ref, new
    return lambdas[0] * ((b1 - b0) ** 2).sum(1) + lambdas[1] * ((c1 - c0) ** 2).sum(1)
