"""What the DP's budget is counted in: ``BUDGET_COSTS`` holds the swappable pieces
(``DM3DPruner(cost=...)``). The DP only asks a cost model for a layer's cost at each
candidate mask, the whole model's cost at a set of masks and the floor no allocation goes
below; a piece builds that cost model, prices each spatial combination and measures the
pruned model.

- ``'flops'`` (:class:`FlopsCost`): the exact joint FLOPs of ``cost/cost_model.py``
  (the default).
- ``'latency'`` (:class:`~dm3d_mm.cost.latency_cost.LatencyCost`): seconds per frame on the
  device the pruner runs on (``cost/latency_cost.py``).
"""
from typing import Callable, Dict, Sequence, Union

from torch import Tensor, nn

from ..registry import BUDGET_COSTS, build_piece
from .cost_model import CostModel
from .latency_cost import LatencyCost


@BUDGET_COSTS.register_module(name='flops')
class FlopsCost:
    """The DP counts the exact joint FLOPs (the default)."""
    unit = 'MACs'

    def build(self, model: nn.Module, batches: Sequence[dict], flops: CostModel) -> CostModel:
        """The FLOPs model itself."""
        return flops

    def option_pricer(self, model: nn.Module, batches: Sequence[dict],
                      reference: CostModel) -> Callable[[CostModel], CostModel]:
        """Each spatial combination's own count (see the module docstring)."""
        return lambda counted: counted

    def measure(self, runnable: Callable[[], nn.Module], batches: Sequence[dict],
                counted: CostModel, masks: Dict[str, Tensor]) -> float:
        """The pruned model's joint FLOPs: its fresh count under its masks.

        Args:
            runnable (Callable): unused (the count is the model's as it runs).
            batches (Sequence[dict]): unused.
            counted (CostModel): the pruned model counted afresh on the calibration frames.
            masks (dict[str, Tensor]): its masks.

        Returns:
            float: MACs per frame.
        """
        return counted.total(masks)


def build_cost(cfg) -> Union[FlopsCost, LatencyCost]:
    """A cost piece from its registered name or a ``dict(type=...)`` config."""
    return build_piece(cfg, BUDGET_COSTS, 'cost', (FlopsCost, LatencyCost))
