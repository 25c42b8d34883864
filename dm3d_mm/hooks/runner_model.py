"""The detector a runner trains, unwrapped from its distributed wrapper (what the hooks mask,
freeze, distil and count)."""
from mmengine.model import is_model_wrapper
from torch import nn


def detector_of(runner) -> nn.Module:
    """``runner.model`` without its ``MMDistributedDataParallel`` (or other) wrapper.

    Args:
        runner (Runner): the mmengine runner.

    Returns:
        nn.Module: the detector.
    """
    return runner.model.module if is_model_wrapper(runner.model) else runner.model
