"""Norm statistics during a masked fine-tune: the running statistics of a pruned model's
BatchNorm layers stay as trained (``DM3DPruningHook(freeze_norm_stats=True)``,
``FreezeNormStatsHook``, the joint allocation's fine-tune probe)."""
import torch


def freeze_norm_stats(model: torch.nn.Module) -> None:
    """Put every BatchNorm layer of ``model`` in eval mode: its running statistics stay as
    they are while its affine parameters still train.

    Args:
        model (nn.Module): the model, in train mode otherwise.
    """
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
