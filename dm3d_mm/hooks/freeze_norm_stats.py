"""FreezeNormStatsHook: train with BatchNorm running statistics frozen (eval mode)."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..weight.norm_stats import freeze_norm_stats
from .runner_model import detector_of


@HOOKS.register_module()
class FreezeNormStatsHook(Hook):
    """Keeps BatchNorm statistics frozen through training (the runner switches the model to
    train mode every epoch, so this runs before every iteration).

    The dense control of a pruning study ("dense-ft") uses it to be fine-tuned exactly like
    the pruned models, whose DM3DPruningHook(freeze_norm_stats=True) does the same.
    """
    priority = 'ABOVE_NORMAL'

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        freeze_norm_stats(detector_of(runner))
