"""DistillationHook: a frozen dense teacher adds its distillation losses to the student's GT
losses on every training iteration of ``tools/train.py``.

The student stays the runner's model (a plain mmdet3d detector: its checkpoints hold its own
keys only and load into plain mmdet3d; ``DM3DPruningHook`` keeps its masks as without
distillation). The teacher is held by the hook, outside the student's module tree: built
from its config and checkpoint, in eval mode, every parameter frozen, run under
``torch.no_grad`` on the student's preprocessed inputs. Two forward hooks record what the
losses read: the student's dense head (its input maps and its outputs) and the student
detector's ``loss`` forward, whose loss dict gets the distillation terms.
"""
from typing import Dict, List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..distill import KDBatch, build_distill_losses, build_teacher, check_families, head_layout
from ..errors import UserError
from ..weight.head_outputs.routes import detection_head, head_features
from .runner_model import detector_of


@HOOKS.register_module()
class DistillationHook(Hook):
    """Distillation from a frozen teacher inside ``tools/train.py``.

    Args:
        teacher (dict, optional): ``dict(config=..., checkpoint=...)``, the teacher
            detector (e.g. the dense model the student was pruned from). None: the config's
            top-level ``distill`` section gives it (with ``losses``, ``gt_weight`` and
            ``adapter_lr``). Defaults to None.
        losses (list[dict], optional): ``DISTILL_LOSSES`` configs. Defaults to None (the
            ``distill`` section's).
        gt_weight (float): the factor of the student's own GT losses. Defaults to 1.0.
        adapter_lr (float): learning rate of the Adam that trains the losses' adapters (a
            slim student's 1x1 convs to the teacher's widths; they are not the student's and
            not in its optimizer or checkpoint). Defaults to 1e-3.
    """
    priority = 'NORMAL'

    def __init__(self, teacher: Optional[dict] = None, losses: Optional[List[dict]] = None,
                 gt_weight: Optional[float] = None, adapter_lr: Optional[float] = None):
        self.given = dict(teacher=teacher, losses=losses, gt_weight=gt_weight,
                          adapter_lr=adapter_lr)
        self.teacher = None
        self.losses: List = []
        self.gt_weight = 1.0
        self.adapter_lr = 1e-3
        self.last: Dict[str, float] = {}  # the distillation terms of the last iteration
        self.teacher_config: Optional[str] = None
        self._handles: list = []
        self._student: Optional[tuple] = None
        self._adapter_optim = None

    def _settings(self, cfg) -> dict:
        section = dict(cfg.get('distill') or {})
        unknown = sorted(set(section) - set(self.given))
        if unknown:
            raise UserError(f'distill: unknown key(s) {unknown}; known: {sorted(self.given)}')
        out = {k: v if v is not None else section.get(k) for k, v in self.given.items()}
        teacher = out['teacher'] or {}
        if set(teacher) != {'config', 'checkpoint'}:
            raise UserError('distill.teacher is dict(config=..., checkpoint=...): the frozen '
                            f'teacher detector; got {out["teacher"]!r}')
        return out

    def before_train(self, runner) -> None:
        self.attach(detector_of(runner), runner.cfg)
        runner.logger.info(f"DistillationHook: teacher {self.teacher_config}, losses "
                           f"{[type(loss).__name__ for loss in self.losses]}")

    def attach(self, model, cfg) -> None:
        """Build the teacher and the losses for ``model`` (the student, built from ``cfg``)
        and hook the distillation into its loss forward (``detach`` undoes it).

        The teacher and the losses are built once; a second ``attach`` after ``detach``
        hooks the same ones in again.

        Args:
            model (nn.Module): the student detector.
            cfg (Config): its config (its ``distill`` section fills what the hook was not
                given).
        """
        head = detection_head(model)
        if self.teacher is None:
            self._build(model, cfg, head)
        self.detach()
        self._handles = [head.register_forward_hook(self._record_student),
                         model.register_forward_hook(self._add_losses, with_kwargs=True)]

    def _build(self, model, cfg, head) -> None:
        settings = self._settings(cfg)
        if settings['gt_weight'] is not None:
            self.gt_weight = float(settings['gt_weight'])
        if settings['adapter_lr'] is not None:
            self.adapter_lr = float(settings['adapter_lr'])
        if not self.gt_weight >= 0 or not self.adapter_lr > 0:
            raise UserError(f'distill: gt_weight >= 0 and adapter_lr > 0, got '
                            f'{self.gt_weight}, {self.adapter_lr}')
        self.teacher_config = settings['teacher']['config']
        self.losses = build_distill_losses(settings['losses'])
        check_families(self.losses, head_layout(head)[0], type(head).__name__)
        self.teacher = build_teacher(settings['teacher']['config'],
                                     settings['teacher']['checkpoint'], model, cfg)
        for loss in self.losses:
            loss.to(next(model.parameters()).device)

    def _record_student(self, module, args, output) -> None:
        # copied: a head's loss may change its outputs in place (CenterHead's loss takes
        # the sigmoid of its heatmap logits in place)
        self._student = (module, args[0], _copy_outputs(output))

    def _add_losses(self, module, args, kwargs, output):
        """After the student's ``loss`` forward: the teacher on the same inputs, then the
        distillation terms added to the loss dict (GT terms scaled by ``gt_weight``)."""
        if kwargs.get('mode') != 'loss' or self._student is None:
            return output
        s_head, s_feats, s_outs = self._student
        self._student = None
        inputs, samples = kwargs['inputs'], kwargs['data_samples']
        with torch.no_grad():
            t_head, t_feats = head_features(self.teacher, inputs,
                                            [s.metainfo for s in samples])
            t_outs = t_head(t_feats)
        kd = KDBatch(s_head, t_head, list(s_feats), list(t_feats), s_outs, t_outs)
        losses = dict(output)
        if self.gt_weight != 1.0:
            for k, v in output.items():
                if 'loss' in k:
                    losses[k] = [x * self.gt_weight for x in v] if isinstance(v, list) \
                        else v * self.gt_weight
        for loss in self.losses:
            for name, value in loss(kd).items():
                losses[name] = losses[name] + value if name in losses else value
        self.last = {k: float(v.detach()) for k, v in losses.items() if k.startswith('loss_kd')}
        return losses

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Step the adapters (their gradients come from the runner's backward)."""
        params = [p for loss in self.losses for p in loss.parameters()]
        if not params:
            return
        if self._adapter_optim is None or \
                len(self._adapter_optim.param_groups[0]['params']) != len(params):
            self._adapter_optim = torch.optim.Adam(params, lr=self.adapter_lr)
        self._adapter_optim.step()
        self._adapter_optim.zero_grad(set_to_none=True)

    def after_train(self, runner) -> None:
        self.detach()

    def detach(self) -> None:
        """Remove the forward hooks :meth:`attach` put on the student."""
        for h in self._handles:
            h.remove()
        self._handles = []


def _copy_outputs(obj):
    """``obj`` with every list, tuple and dict in it copied and every tensor cloned (in the
    autograd graph: the distillation's gradient reaches the head through the clones)."""
    if isinstance(obj, dict):
        return {k: _copy_outputs(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_copy_outputs(v) for v in obj)
    return obj.clone() if isinstance(obj, torch.Tensor) else obj
