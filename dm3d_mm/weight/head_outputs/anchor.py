"""Anchor heads: Anchor3DHead and its subclasses (SECOND, PointPillars, Part-A2 / PV-RCNN
RPNs, FreeAnchor, SA-SSD) and SSN's ShapeAwareHead."""
from typing import List, Tuple

from torch import Tensor, nn

from ...registry import HEAD_OUTPUTS
from .base import HeadOutputs, flat


def _anchor_weighted(maps: Tensor, conf: Tensor) -> Tensor:
    """Scale (B, A*k, H, W) per-anchor maps by sqrt of the (B, A, H, W) confidence."""
    b, ak, h, w = maps.shape
    a = conf.shape[1]
    return (maps.reshape(b, a, ak // a, h, w) * conf.sqrt()[:, :, None]).reshape(b, ak, h, w)


@HEAD_OUTPUTS.register_module()
class AnchorHeadOutputs(HeadOutputs):
    """Anchor3DHead outputs: per level (B, A*C, H, W) class logits, (B, A*code, H, W) box
    deltas and (B, A*2, H, W) direction logits. p_c = sigmoid(class logits); p_b = box and
    direction terms, each anchor's scaled by sqrt of its best class confidence when
    ``box_weighting='confidence'``.

    Args:
        box_weighting (str): see :class:`HeadOutputs`. Defaults to ``'confidence'``.
    """
    head_types = ('Anchor3DHead', )

    def split(self, head: nn.Module, outs, batch: int) -> Tuple[Tensor, Tensor]:
        cls_scores, bbox_preds = outs[0], outs[1]
        dir_preds = outs[2] if len(outs) > 2 and outs[2] is not None else \
            [None] * len(bbox_preds)
        boxes, scores = [], []
        for cls, box, dirs in zip(cls_scores, bbox_preds, dir_preds):
            prob = cls.sigmoid()
            scores.append(prob)
            level = [box] + ([dirs] if dirs is not None else [])
            boxes.extend(self.weighted(head, prob.detach(), level) if self.weigh else level)
        return flat(boxes, batch, cls_scores[0]), flat(scores, batch, cls_scores[0])

    def weighted(self, head: nn.Module, prob: Tensor, level: List[Tensor]) -> List[Tensor]:
        """Scale each anchor's box / direction maps by sqrt of its best class confidence."""
        b, ac, h, w = prob.shape
        conf = prob.reshape(b, ac // head.num_classes, head.num_classes, h, w).amax(2)
        return [_anchor_weighted(t, conf) for t in level]


@HEAD_OUTPUTS.register_module()
class ShapeAwareHeadOutputs(AnchorHeadOutputs):
    """SSN's ShapeAwareHead: per level, all shape groups' anchors concatenated as (B, N, C)
    class logits, (B, N, code) box deltas and (B, N, 2) direction logits.

    Args:
        box_weighting (str): see :class:`HeadOutputs`. Defaults to ``'confidence'``.
    """
    head_types = ('ShapeAwareHead', )

    def weighted(self, head: nn.Module, prob: Tensor, level: List[Tensor]) -> List[Tensor]:
        conf = prob.amax(-1, keepdim=True).sqrt()  # (B, N, 1)
        return [t * conf for t in level]
