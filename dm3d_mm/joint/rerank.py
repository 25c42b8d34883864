"""Re-ranking the joint allocation's best combinations by what a short fine-tune makes of
them (``JOINT_RERANKS``).

The joint objective compares combinations by their distortion *before* fine-tuning. Where
the pruned models are fine-tuned afterwards, that is not always the order they end in: on
the demo SECOND at 0.05 of the dense FLOPs the combination of least predicted distortion
fine-tunes 2.6 mAP below the third best (docs/joint_allocation.md). A re-rank takes the
``top_k`` combinations of least objective (each with its DP weight choice), fine-tunes a copy
of the model under each for a few steps on the training set, with the masks kept and the
norm statistics frozen as the fine-tune does, and keeps the one whose copy then has the
least output distortion against the model as trained on the calibration frames.

- ``finetune_probe`` (:class:`FinetuneProbe`): the above. It needs the training set-up of a
  config (its ``model`` with ``train_cfg``, ``train_dataloader`` and ``optim_wrapper``):
  :func:`~dm3d_mm.pruning.builder.build_pruner` binds the config it builds from.
"""
import contextlib
import copy
import itertools
import random
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from ..errors import UserError
from ..registry import JOINT_RERANKS, build_piece
from ..weight.calibration import measured_distortion
from ..weight.masks import MaskSet
from ..weight.norm_stats import freeze_norm_stats
from .sites import find_sites, set_keep_ratios


@contextlib.contextmanager
def seeded(seed: int):
    """Within the block, Python's, numpy's and torch's random generators start from
    ``seed``; their states before it are restored after it."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


@JOINT_RERANKS.register_module(name='finetune_probe')
class FinetuneProbe:
    """Fine-tune each of the best combinations briefly; keep the least distorted after it.

    Args:
        top_k (int): how many combinations of least objective are probed (>= 2).
            Defaults to 3.
        steps (int): fine-tune iterations per combination (batches of the config's
            ``train_dataloader``, the same batches for every combination). Defaults to 30.
        seed (int): the seed of the probe's data order and augmentations. Defaults to 0.
        repeats (int): probes per combination, on seeds ``seed``, ``seed + 1``, ...; the
            score is their mean distortion (one probe's ranking moves with its seed on
            the demo SECOND: docs/joint_allocation.md). Defaults to 3.
    """

    def __init__(self, top_k: int = 3, steps: int = 30, seed: int = 0, repeats: int = 3):
        if int(top_k) < 2 or int(steps) < 1 or int(repeats) < 1:
            raise UserError(f'finetune_probe: top_k must be >= 2, steps and repeats >= 1, '
                             f'got top_k={top_k}, steps={steps}, repeats={repeats}')
        self.top_k, self.steps, self.seed = int(top_k), int(steps), int(seed)
        self.repeats = int(repeats)
        self.cfg = None
        self._batches: Dict[int, List[dict]] = {}

    @property
    def spec(self) -> dict:
        """The re-rank as a config: equal specs choose alike."""
        return dict(type='finetune_probe', top_k=self.top_k, steps=self.steps,
                    seed=self.seed, repeats=self.repeats)

    def bind(self, cfg) -> 'FinetuneProbe':
        """Take the training set-up from a config (``model``, ``train_dataloader``,
        ``optim_wrapper``)."""
        missing = [k for k in ('model', 'train_dataloader', 'optim_wrapper') if k not in cfg]
        if missing:
            raise UserError(f'finetune_probe: the config has no {", ".join(missing)}')
        self.cfg = cfg
        self._batches = {}
        return self

    @property
    def _scope(self) -> str:
        """The registry scope the config's model and pipeline resolve in."""
        return self.cfg.get('default_scope') or 'mmdet3d'

    def _train_batches(self, seed: int) -> List[dict]:
        """``steps`` training batches drawn with ``seed``."""
        if seed not in self._batches:
            from mmengine.registry import DefaultScope
            from mmengine.runner import Runner
            loader_cfg = copy.deepcopy(self.cfg.train_dataloader)
            loader_cfg['num_workers'] = 0
            loader_cfg.pop('persistent_workers', None)
            # the augmentations draw from the global generators: the same batches every run
            with DefaultScope.overwrite_default_scope(self._scope), seeded(seed):
                loader = Runner.build_dataloader(loader_cfg, seed=seed)
                batches = []
                while len(batches) < self.steps:  # epochs over a small set
                    batches += list(itertools.islice(iter(loader), self.steps - len(batches)))
            self._batches[seed] = batches
        return self._batches[seed]

    def _trainable(self, model: nn.Module) -> nn.Module:
        """A copy of ``model`` (its weights and buffers) built with its training set-up."""
        from mmdet3d.registry import MODELS
        from mmengine.registry import DefaultScope
        with DefaultScope.overwrite_default_scope(self._scope):
            copy_ = MODELS.build(copy.deepcopy(self.cfg.model))
        copy_.load_state_dict(model.state_dict())
        device = next(model.parameters()).device
        return copy_.to(device)

    def finetuned(self, model: nn.Module, ratios: Dict[str, float],
                  masks: Dict[str, Tensor], seed: Optional[int] = None) -> nn.Module:
        """A copy of ``model`` with ``ratios`` and ``masks`` in force, fine-tuned ``steps``
        iterations (masks kept, norm statistics frozen), in eval mode. ``model`` is not
        changed.

        Args:
            model (nn.Module): the detector as trained.
            ratios (dict[str, float]): keep ratio per spatial site.
            masks (dict[str, Tensor]): weight masks per layer name.
            seed (int, optional): the seed its batches are drawn with. Defaults to None
                (the probe's ``seed``).
        """
        from mmengine.optim import build_optim_wrapper
        if self.cfg is None:
            raise UserError('finetune_probe needs the training set-up of a config: build the '
                             'pruner with build_pruner(cfg) (tools/prune.py, tools/train.py '
                             'and tools/ablate.py do)')
        probe = self._trainable(model)
        set_keep_ratios(find_sites(probe, names=list(ratios)), ratios)
        wrapper = build_optim_wrapper(probe, copy.deepcopy(self.cfg.optim_wrapper))
        kept = MaskSet(probe, masks).apply().attach([wrapper.optimizer])
        for batch in self._train_batches(self.seed if seed is None else seed):
            probe.train()
            freeze_norm_stats(probe)  # as the fine-tune runs
            probe.train_step(batch, wrapper)
        kept.detach()
        return probe.eval()

    def score(self, model: nn.Module, ratios: Dict[str, float], masks: Dict[str, Tensor],
              batches: Sequence[dict], reference: list, outputs: Callable,
              lambdas=(0.0, 1.0)) -> float:
        """The output distortion against ``reference`` on ``batches`` of
        :meth:`finetuned` ``(model, ratios, masks)``, the mean over ``repeats`` seeds."""
        return float(np.mean([
            measured_distortion(self.finetuned(model, ratios, masks, self.seed + i), batches,
                                reference, outputs, lambdas) for i in range(self.repeats)]))

    def rerank(self, rows: Sequence[dict], masks_of: Callable[[List[int]], Dict[str, Tensor]],
               model: nn.Module, batches: Sequence[dict], reference: list, outputs: Callable,
               lambdas=(0.0, 1.0)) -> Tuple[dict, List[dict]]:
        """(the row of the joint search's table chosen among the ``top_k`` of least
        objective, what was probed: ``ratios``, ``objective`` and ``probe``, the distortion
        after the probe, per probed row, least objective first).

        Args:
            rows (Sequence[dict]): the joint search's table (``ratios``, ``objective``,
                ``choice``; rows where nothing fits have no objective).
            masks_of (Callable): a weight choice -> its masks.
            model (nn.Module): the detector as trained (not changed).
            batches (Sequence[dict]): the calibration frames.
            reference (list): the model's head outputs on them as trained.
            outputs (Callable): the head-output extractor.
            lambdas (tuple[float, float]): box and confidence weights of the distortion.
        """
        best = sorted((r for r in rows if r.get('objective') is not None),
                      key=lambda r: r['objective'])[:self.top_k]
        probed = [dict(ratios=dict(r['ratios']), objective=r['objective'],
                       probe=self.score(model, r['ratios'], masks_of(r['choice']), batches,
                                        reference, outputs, lambdas)) for r in best]
        i = min(range(len(best)), key=lambda j: probed[j]['probe'])
        print_log(f'joint allocation re-ranked by a fine-tune probe ({self.steps} steps, '
                  f'{self.repeats} seed(s)): ' + ', '.join(
                      f"{p['ratios']} objective {p['objective']:.4g} -> {p['probe']:.4g}"
                      for p in probed) + f"; chosen {best[i]['ratios']}", logger='current')
        return best[i], probed


def build_rerank(cfg) -> Optional[FinetuneProbe]:
    """A re-rank from its registered name or a ``dict(type=...)`` config; None: none."""
    if cfg is None:
        return None
    return build_piece(cfg, JOINT_RERANKS, 'joint re-rank', (FinetuneProbe,))


def rerank_spec(cfg) -> Optional[dict]:
    """The canonical config of a re-rank given by name, config or instance (its defaults
    filled in); None: none.

    Args:
        cfg (str | dict | object | None): a ``JOINT_RERANKS`` name, config or piece.
    """
    rerank = build_rerank(cfg)
    return None if rerank is None else rerank.spec
