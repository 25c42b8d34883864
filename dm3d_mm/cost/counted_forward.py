"""Joint FLOPs of a model over a few batches, through a forward the caller chooses."""
from typing import Callable, Sequence

import torch
from torch import nn

from .counter import FlopsCounter


def frames_in(batch: dict) -> int:
    """Frames in one collated batch."""
    return len(batch['data_samples'])


@torch.no_grad()
def count_flops(model: nn.Module, batches: Sequence[dict],
                forward: Callable[[nn.Module, dict], object]) -> FlopsCounter:
    """A FlopsCounter over an eval-mode ``forward(model, batch)`` of each batch (the model's
    train/eval mode is restored). ``forward`` is injected, the way Torch-Pruning takes a
    ``forward_fn``: the pruner passes its head-output extractor, the tools the test step."""
    was_training = model.training
    model.eval()
    try:
        with FlopsCounter(model) as counter:
            for b in batches:
                forward(model, b)
                counter.add_frames(frames_in(b))
    finally:
        model.train(was_training)
    return counter
