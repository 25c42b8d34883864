"""Distillation losses (``DISTILL_LOSSES``): what a frozen teacher adds to a student's GT
losses, each a registered piece with its ``loss_weight``, selected by ``type=``.

Every loss reads one :class:`KDBatch`: the student's and the teacher's dense head, the
features that head took (the neck's BEV maps) and its raw outputs, recorded on one training
iteration. With student = teacher every loss is exactly 0.

- ``center_head_response``: CenterPoint's CenterHead, per task: the class heatmaps
  (sigmoid, squared error, over the teacher's heatmap mass or its number of peaks) and the
  regression maps (L1 where the teacher is confident, weighted by its confidence);
- ``anchor_head_response``: anchor heads (SECOND, PointPillars): class probabilities, box
  deltas and direction logits, per anchor, the same way;
- ``bev_feature``: imitation of the teacher's BEV features (the head's input), over every
  pixel, the pixels the student keeps, or weighted by the teacher's confidence; a 1x1
  adapter where a slim student's width differs (trained by the distillation hook).
"""
from dataclasses import dataclass
from typing import Dict, List, Sequence

import torch
from torch import Tensor, nn

from ..errors import UnfitModel, UserError
from ..registry import DISTILL_LOSSES


@dataclass
class KDBatch:
    """One iteration's recordings of a student and its teacher.

    Args:
        student_head (nn.Module): the student's dense head.
        teacher_head (nn.Module): the teacher's.
        student_feats (Sequence[Tensor]): the maps the student's head took, per level.
        teacher_feats (Sequence[Tensor]): the teacher's (no gradient).
        student_outs (object): the student head's raw outputs (its ``forward``).
        teacher_outs (object): the teacher head's.
    """
    student_head: nn.Module
    teacher_head: nn.Module
    student_feats: Sequence[Tensor]
    teacher_feats: Sequence[Tensor]
    student_outs: object
    teacher_outs: object


def head_confidence(head: nn.Module, outs) -> List[Tensor]:
    """Per feature level, the head's best class probability at each BEV pixel, (B, 1, H, W)
    (detached): the max over tasks and classes of a CenterHead's heatmaps, over anchors and
    classes of an anchor head's class maps."""
    from mmdet3d.models.dense_heads import Anchor3DHead, CenterHead
    if isinstance(head, CenterHead):
        levels = len(outs[0])
        return [torch.stack([task[lvl]['heatmap'].detach().sigmoid().amax(1)
                             for task in outs]).amax(0)[:, None] for lvl in range(levels)]
    if isinstance(head, Anchor3DHead):
        return [cls.detach().sigmoid().amax(1, keepdim=True) for cls in outs[0]]
    raise UnfitModel(f'no confidence map for a {type(head).__name__}: distillation knows '
                     'CenterHead and Anchor3DHead')


class DistillLoss(nn.Module):
    """Base of the distillation losses: ``forward(kd) -> {name: loss}``.

    Args:
        loss_weight (float): the factor of every term. Defaults to 1.0.
        min_confidence (float): the teacher's class probability below which a location
            gets no weight where a loss weighs locations by that probability. Defaults to
            0.1.
    """
    #: the head family whose outputs the loss reads (None: any)
    family = None

    def __init__(self, loss_weight: float = 1.0, min_confidence: float = 0.1):
        super().__init__()
        if not float(loss_weight) >= 0 or not 0 <= min_confidence < 1:
            raise UserError(f'{type(self).__name__}: loss_weight >= 0 and min_confidence in '
                            f'[0, 1), got {loss_weight}, {min_confidence}')
        self.loss_weight, self.min_confidence = float(loss_weight), float(min_confidence)

    def confident(self, conf: Tensor) -> Tensor:
        """``conf`` where it exceeds ``min_confidence``, 0 elsewhere (location weights)."""
        return conf * (conf > self.min_confidence)

    def forward(self, kd: KDBatch) -> Dict[str, Tensor]:
        raise NotImplementedError


def _soft_mse(student_logits: Tensor, teacher_logits: Tensor, peaks_above=None) -> Tensor:
    """Squared error of the sigmoid probabilities, summed over every location, over the
    teacher's probability mass, or (``peaks_above`` a probability) over the number of
    locations where the teacher exceeds it (as CenterPoint's focal loss is over the number
    of objects)."""
    t = teacher_logits.detach().sigmoid()
    norm = t.sum() if peaks_above is None else (t > peaks_above).sum().to(t.dtype)
    return ((student_logits.sigmoid() - t) ** 2).sum() / norm.clamp(min=1.0)


def _weighted_l1(student: Tensor, teacher: Tensor, weight: Tensor) -> Tensor:
    """L1 of the maps weighted per location (``weight`` broadcasts over the channels), over
    the summed weight."""
    return ((student - teacher.detach()).abs() * weight).sum() / \
        (weight.sum() * student.shape[1] / weight.shape[1]).clamp(min=1.0)


class HeadResponse(DistillLoss):
    """Base of the response distillations: a class term and ``box_weight`` x a box term
    where the teacher is confident.

    Args:
        loss_weight (float): the factor of both terms. Defaults to 1.0.
        box_weight (float): the factor of the box term. Defaults to 1.0.
        min_confidence (float): the teacher's class probability below which a location's
            boxes are not distilled. Defaults to 0.1.
        cls_norm (str): what the class term's summed squared error is divided by:
            ``'mass'``, the teacher's summed class probability (every location's share,
            background included), or ``'peaks'``, the number of locations where the
            teacher's probability exceeds ``min_confidence`` (a term of the size of the GT
            heatmap loss, which is over the number of objects). Defaults to 'mass'.
    """
    CLS_NORMS = ('mass', 'peaks')

    def __init__(self, loss_weight: float = 1.0, box_weight: float = 1.0,
                 min_confidence: float = 0.1, cls_norm: str = 'mass'):
        super().__init__(loss_weight, min_confidence)
        if not box_weight >= 0:
            raise UserError(f'{type(self).__name__}: box_weight >= 0, got {box_weight}')
        if cls_norm not in self.CLS_NORMS:
            raise UserError(f'{type(self).__name__}: cls_norm must be one of '
                            f'{self.CLS_NORMS}, got {cls_norm!r}')
        self.box_weight = float(box_weight)
        self.peaks_above = self.min_confidence if cls_norm == 'peaks' else None


@DISTILL_LOSSES.register_module(name='center_head_response')
class CenterHeadResponse(HeadResponse):
    """Response distillation of a CenterHead: per task and level, ``_soft_mse`` of the class
    heatmaps plus ``box_weight`` x the L1 of every regression map (reg, height, dim, rot,
    vel) where the teacher's best class probability exceeds ``min_confidence``, weighted by
    it.

    Args:
        loss_weight (float): the factor of both terms. Defaults to 1.0.
        box_weight (float): the factor of the regression term. Defaults to 1.0.
        min_confidence (float): the teacher's confidence below which a pixel's regression
            is not distilled. Defaults to 0.1.
    """
    family = 'center'

    def forward(self, kd: KDBatch) -> Dict[str, Tensor]:
        cls_terms, box_terms = [], []
        for s_task, t_task in zip(kd.student_outs, kd.teacher_outs):
            for s, t in zip(s_task, t_task):
                cls_terms.append(_soft_mse(s['heatmap'], t['heatmap'], self.peaks_above))
                conf = self.confident(t['heatmap'].detach().sigmoid().amax(1, keepdim=True))
                for key in sorted(k for k in t if k != 'heatmap'):
                    box_terms.append(_weighted_l1(s[key], t[key], conf))
        return dict(loss_kd_heatmap=self.loss_weight * sum(cls_terms),
                    loss_kd_box=self.loss_weight * self.box_weight * sum(box_terms))


@DISTILL_LOSSES.register_module(name='anchor_head_response')
class AnchorHeadResponse(HeadResponse):
    """Response distillation of an anchor head (Anchor3DHead: SECOND, PointPillars): per
    level, ``_soft_mse`` of the class probabilities plus ``box_weight`` x the L1 of the box
    deltas and of the direction probabilities per anchor where the teacher's best class
    probability for that anchor exceeds ``min_confidence``, weighted by it.

    Args:
        loss_weight (float): the factor of both terms. Defaults to 1.0.
        box_weight (float): the factor of the box and direction term. Defaults to 1.0.
        min_confidence (float): see :class:`CenterHeadResponse`. Defaults to 0.1.
    """
    family = 'anchor'

    def forward(self, kd: KDBatch) -> Dict[str, Tensor]:
        head = kd.teacher_head
        s_outs, t_outs = kd.student_outs, kd.teacher_outs
        cls_terms, box_terms = [], []
        for level, (s_cls, t_cls) in enumerate(zip(s_outs[0], t_outs[0])):
            cls_terms.append(_soft_mse(s_cls, t_cls, self.peaks_above))
            b, ac, h, w = t_cls.shape
            a = ac // head.num_classes
            conf = t_cls.detach().sigmoid().reshape(b, a, head.num_classes, h, w).amax(2)
            conf = self.confident(conf)[:, :, None]  # (B, A, 1, H, W)
            s_box, t_box = s_outs[1][level], t_outs[1][level]
            box_terms.append(_weighted_l1(s_box.reshape(b, a, -1, h, w),
                                          t_box.reshape(b, a, -1, h, w), conf))
            if len(t_outs) > 2 and t_outs[2] is not None:
                s_dir = s_outs[2][level].reshape(b, a, -1, h, w).softmax(2)
                t_dir = t_outs[2][level].reshape(b, a, -1, h, w).softmax(2)
                box_terms.append(_weighted_l1(s_dir, t_dir, conf))
        return dict(loss_kd_cls=self.loss_weight * sum(cls_terms),
                    loss_kd_box=self.loss_weight * self.box_weight * sum(box_terms))


@DISTILL_LOSSES.register_module(name='bev_feature')
class BEVFeatureImitation(DistillLoss):
    """Imitation of the teacher's BEV features (the maps its head takes): the squared error
    per channel, averaged over a region of pixels, per level.

    Args:
        loss_weight (float): the factor of the term. Defaults to 1.0.
        region (str): ``'all'`` pixels; ``'active'``: the pixels where the student's map is
            not all zero (on a spatially sparse student, the pixels it keeps);
            ``'foreground'``: every pixel weighted by the teacher's best class probability
            where that exceeds ``min_confidence``. Defaults to 'all'.
        min_confidence (float): see ``region``. Defaults to 0.1.
    """
    REGIONS = ('all', 'active', 'foreground')

    def __init__(self, loss_weight: float = 1.0, region: str = 'all',
                 min_confidence: float = 0.1):
        super().__init__(loss_weight, min_confidence)
        if region not in self.REGIONS:
            raise UserError(f'bev_feature: region must be one of {self.REGIONS}, got '
                            f'{region!r}')
        self.region = region
        # a 1x1 conv per level from the student's width to the teacher's, built on the
        # first batch where the widths differ (a slim student)
        self.adapters = nn.ModuleDict()

    def adapter(self, level: int, student: Tensor, teacher: Tensor) -> nn.Module:
        """The level's adapter (identity where the widths agree)."""
        cs, ct = student.shape[1], teacher.shape[1]
        if cs == ct:
            return nn.Identity()
        key = str(level)
        if key not in self.adapters:
            conv = nn.Conv2d(cs, ct, 1, bias=False).to(student.device)
            # start at the identity on the channels both keep (a slim student's channels
            # are a subset of the teacher's, in order)
            with torch.no_grad():
                conv.weight.zero_()
                conv.weight[torch.arange(min(cs, ct)), torch.arange(min(cs, ct))] = 1.0
            self.adapters[key] = conv
        return self.adapters[key]

    def forward(self, kd: KDBatch) -> Dict[str, Tensor]:
        conf = head_confidence(kd.teacher_head, kd.teacher_outs) \
            if self.region == 'foreground' else None
        terms = []
        for level, (s, t) in enumerate(zip(kd.student_feats, kd.teacher_feats)):
            if s.shape[-2:] != t.shape[-2:]:
                raise UserError(f'bev_feature: the student\'s BEV map {tuple(s.shape[-2:])} '
                                f'and the teacher\'s {tuple(t.shape[-2:])} differ at level '
                                f'{level}: both need one BEV grid')
            err = ((self.adapter(level, s, t)(s) - t.detach()) ** 2).mean(1, keepdim=True)
            if self.region == 'all':
                weight = torch.ones_like(err)
            elif self.region == 'active':
                weight = (s.detach().abs().sum(1, keepdim=True) > 0).to(err.dtype)
            else:
                weight = self.confident(conf[level])
            terms.append((err * weight).sum() / weight.sum().clamp(min=1.0))
        return dict(loss_kd_feature=self.loss_weight * sum(terms))


def build_distill_losses(cfgs: Sequence[dict]) -> List[DistillLoss]:
    """The losses of a ``distill.losses`` list (each a ``DISTILL_LOSSES`` config)."""
    from ..registry import build_piece
    if not cfgs:
        raise UserError('distill.losses is empty: name at least one DISTILL_LOSSES piece')
    return [build_piece(c, DISTILL_LOSSES, 'distillation loss', (DistillLoss, ))
            for c in cfgs]


def check_families(losses: Sequence[DistillLoss], family: str, head: str) -> None:
    """A loss that reads another head family's outputs than the student's is an error."""
    wrong = [type(loss).__name__ for loss in losses
             if loss.family is not None and loss.family != family]
    if wrong:
        raise UserError(f'distillation losses {wrong} read another head than the student\'s '
                        f'{head}: use center_head_response for a CenterHead, '
                        'anchor_head_response for an anchor head')


__all__ = ['KDBatch', 'DistillLoss', 'CenterHeadResponse', 'AnchorHeadResponse',
           'BEVFeatureImitation', 'head_confidence', 'build_distill_losses',
           'check_families']
