"""DM3DPruningHook: prune at the start of training unless the loaded checkpoint already
carries masks, keep the masks exact through every optimizer step, restore them on resume,
log sparsity and joint FLOPs each epoch, and save masks + allocation in every checkpoint."""
from typing import Dict, Optional

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..cost import count_flops
from ..errors import MissingKey, OverBudget, UserError
from ..joint.sites import apply_checkpoint_keep_ratios
from ..pruning.builder import build_pruner, pruning_section
from ..pruning.calib_frames import calibration_batches, resolve_calib
from ..pruning.checkpoint import META_KEY, read_dm3d_meta
from ..pruning.result import budget_line
from ..weight.head_outputs import build_head_outputs
from ..weight.masks import MaskSet, optimizers_of
from ..weight.norm_stats import freeze_norm_stats
from .runner_model import detector_of


@HOOKS.register_module()
class DM3DPruningHook(Hook):
    """Weight pruning inside ``tools/train.py``.

    Args:
        pruner (dict, optional): a PRUNERS config; None: the config's top-level ``pruning``
            dict. Defaults to None.
        calib (dict, optional): calibration frames for pruning at start (test pipeline),
            ``frames`` and ``split``. Precedence: this argument > ``pruning.calib`` >
            dict(frames=16, split='train'). Defaults to None.
        prune_on_start (bool): prune when the loaded weights carry no masks; if False, such a
            run is an error (fine-tuning a dense model with this hook is almost surely a
            mistake). Defaults to True.
        flops_frames (int): the logged joint FLOPs are the pruning's own count (the pruned
            model on its calibration frames, as ``tools/prune.py`` reports them); masks from
            a checkpoint without that count are counted on this many calibration frames (0:
            not counted). Defaults to 2.
        freeze_norm_stats (bool): keep BatchNorm layers in eval mode while training, so a
            short fine-tune uses (and keeps) the statistics the pruning was calibrated with.
            Defaults to False.
        allow_over_budget (bool): fine-tune a model whose pruning did not fit its budget
            (a checkpoint ``tools/prune.py --allow-over-budget`` wrote); by default such a
            checkpoint is an error, and a pruning at start that does not fit raises before
            training. Defaults to False.
    """
    priority = 'ABOVE_NORMAL'

    def __init__(self, pruner: Optional[dict] = None, calib: Optional[dict] = None,
                 prune_on_start: bool = True, flops_frames: int = 2,
                 freeze_norm_stats: bool = False, allow_over_budget: bool = False):
        if isinstance(flops_frames, bool) or not isinstance(flops_frames, int) \
                or flops_frames < 0:
            raise UserError(f'DM3DPruningHook: flops_frames is a frame count >= 0, got '
                            f'{flops_frames!r}')
        self.allow_over_budget = bool(allow_over_budget)
        self.pruner_cfg = pruner
        self.calib = dict(calib or {})
        self.prune_on_start = prune_on_start
        self.flops_frames = flops_frames
        self.freeze_norm_stats = freeze_norm_stats
        self.loaded: Optional[Dict] = None
        self.masks: Optional[MaskSet] = None
        self.info: Dict = {}
        self.flops: Dict[str, float] = {}
        self.calib_used = 0  # calibration frames the pruning at start really used
        self._outputs = None

    def after_load_checkpoint(self, runner, checkpoint) -> None:
        meta = read_dm3d_meta(checkpoint)
        if meta and meta.get('masks'):
            self.loaded = meta

    def _prune(self, runner, model):
        overrides = dict(allow_over_budget=True) if self.allow_over_budget else {}
        # the one builder of tools/prune.py: unknown keys, calib and a re-rank's training
        # set-up handled the same way
        pruner = build_pruner(runner.cfg, self.pruner_cfg, **overrides)
        calib = resolve_calib(runner.cfg, self.calib, self.pruner_cfg)
        batches = calibration_batches(runner.cfg, calib['frames'], calib['split'])
        runner.logger.info(f'DM3DPruningHook: pruning at start on {len(batches)} '
                           f'{calib["split"]} frames')
        was_training = model.training
        result = pruner.prune(model, batches)
        model.train(was_training)
        self.calib_used = len(batches)
        self._outputs = pruner.outputs(model)
        return result.masks, result.info(), batches

    @torch.no_grad()
    def _count_flops(self, runner, model, batches) -> None:
        info = self.info or {}
        if info.get('macs_before') and info.get('macs_after') is not None:
            # the pruning's own count: the pruned model on the calibration frames against
            # the dense one on the same frames (tools/prune.py reports the same numbers)
            self.flops = dict(gmacs=info['macs_after'] / 1e9,
                              ratio=info['macs_after'] / info['macs_before'])
            return
        if not self.flops_frames:
            return
        if batches is None:
            split = resolve_calib(runner.cfg, self.calib, self.pruner_cfg)['split']
            batches = calibration_batches(runner.cfg, self.flops_frames, split)
        outputs = self._outputs or build_head_outputs(
            model, pruning_section(runner.cfg, self.pruner_cfg).get('head_outputs'))
        counter = count_flops(model, batches[:self.flops_frames], outputs)
        dense = sum(st.dense_macs for st in counter.layers.values())
        self.flops = dict(gmacs=counter.total_macs() / 1e9 / counter.frames,
                          ratio=counter.total_macs() / max(dense, 1))

    def before_train(self, runner) -> None:
        model = detector_of(runner)
        batches = None
        if self.loaded is not None:
            masks = self.loaded['masks']
            self.info = {k: v for k, v in self.loaded.items() if k != 'masks'}
            if self.info.get('fits') is False and not self.allow_over_budget:
                raise OverBudget(
                    f"DM3DPruningHook: the loaded checkpoint's pruning is over its budget "
                    f"({budget_line(self.info)}); prune again to a budget it meets, or "
                    'set allow_over_budget=True on the hook')
            runner.logger.info(f'DM3DPruningHook: {len(masks)} layer masks from the checkpoint')
            ratios = apply_checkpoint_keep_ratios(model, self.loaded)
            if ratios:  # a joint pruning: its spatial choice runs with its masks
                runner.logger.info(f'DM3DPruningHook: spatial keep ratios in force: {ratios}')
        elif self.prune_on_start:
            masks, self.info, batches = self._prune(runner, model)
        else:
            raise MissingKey('DM3DPruningHook(prune_on_start=False): the loaded checkpoint '
                               f"has no meta['{META_KEY}'] masks; load a pruned checkpoint "
                               '(tools/prune.py) or allow pruning at start')
        self.masks = MaskSet(model, masks).attach(optimizers_of(runner.optim_wrapper))
        self._count_flops(runner, model, batches)
        self._log(runner)

    def _log(self, runner) -> None:
        sparsity = self.masks.total_sparsity()
        runner.message_hub.update_scalar('dm3d/sparsity', sparsity)
        msg = (f'DM3DPruningHook: weight sparsity {sparsity:.4f} over '
               f'{len(self.masks.masks)} layers')
        if self.flops:
            runner.message_hub.update_scalar('dm3d/gmacs', self.flops['gmacs'])
            runner.message_hub.update_scalar('dm3d/flops_ratio', self.flops['ratio'])
            msg += (f", joint {self.flops['gmacs']:.3f} GMACs/frame "
                    f"({self.flops['ratio']:.3f} of dense)")
        runner.logger.info(msg)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self.freeze_norm_stats:
            freeze_norm_stats(detector_of(runner))

    def after_train_epoch(self, runner) -> None:
        if self.masks is not None:
            self._log(runner)

    def before_save_checkpoint(self, runner, checkpoint) -> None:
        if self.masks is None:
            return
        meta = checkpoint.setdefault('meta', {})
        meta[META_KEY] = dict(self.info, masks=self.masks.state(), flops=dict(self.flops))
