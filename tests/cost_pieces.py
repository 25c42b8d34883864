"""A cost piece for the tests of over-budget prunings, registered as a plugin registers its
own (``custom_imports``): the pruned model as it runs costs its joint FLOPs plus half the
dense model's, an overhead the allocation's per-layer cost model cannot see (as a measured
time that is not the sum of the convs' isolated timings), so that no re-allocation fits a
budget at or below half the dense FLOPs."""
from dm3d_mm.cost.budget_cost import FlopsCost
from dm3d_mm.registry import BUDGET_COSTS


@BUDGET_COSTS.register_module(name='flops_with_overhead', force=True)
class FlopsWithOverhead(FlopsCost):
    """Joint FLOPs, plus ``overhead`` x the dense FLOPs once the model runs pruned.

    Args:
        overhead (float): the fraction of the dense joint FLOPs added. Defaults to 0.5.
    """

    def __init__(self, overhead: float = 0.5):
        self.overhead = float(overhead)

    def measure(self, runnable, batches, counted, masks) -> float:
        return super().measure(runnable, batches, counted, masks) + \
            self.overhead * counted.dense_total
