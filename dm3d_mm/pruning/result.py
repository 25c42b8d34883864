"""What a pruning returns: per-layer allocation, the cost before and after (counted on the
pruned model as it will run), whether it fits its budget, and what the report needs."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from torch import Tensor, nn

#: a measured output distortion this many times the predicted one is flagged in the report
DISTORTION_GAP_FACTOR = 3.0


@dataclass
class LayerResult:
    """One pruned layer: its name, part, weight count, fraction pruned, joint MACs per frame
    before and after, and the distortion its curve predicted at the chosen ratio."""
    name: str
    part: str
    numel: int
    ratio: float               # fraction of weights pruned
    macs_before: float         # per frame
    macs_after: float
    predicted_distortion: Optional[float] = None


@dataclass
class PruneResult:
    """A pruning's record (see :meth:`info` for its JSON form).

    ``macs_before`` is the budget's reference (the model with every weight kept, spatial
    sites at their largest ratios, or ``reference`` where one was given), ``macs_after`` the
    pruned model counted afresh on the calibration frames; ``fits`` whether the pruned model,
    counted (or timed) as it will run, is within the budget (False only when the pruner was
    allowed to return the closest model over it)."""
    method: str
    estimator: Optional[str]
    flops_target: float
    macs_before: float
    macs_after: float
    floor: float
    layers: List[LayerResult]
    masks: Dict[str, Tensor]
    timings: Dict[str, float] = field(default_factory=dict)
    curves: Dict[str, Dict[str, list]] = field(default_factory=dict)
    measured_distortion: Optional[float] = None
    budget_of: str = 'model'  # flops_target is a fraction of: 'model' or 'parts' FLOPs
    left_out: Dict[str, List[str]] = field(default_factory=dict)  # reason -> layer names
    head_outputs: str = ''
    # what the budget counted: unit ('MACs' or 'seconds'), before, after, budget, the
    # reference's name and its cost
    cost: Dict[str, object] = field(default_factory=dict)
    # joint FLOPs of the pruned model as the dense pass's pair counts predicted them
    macs_after_predicted: Optional[float] = None
    # joint allocation (``spatial=``): keep ratios chosen per site, the ratios the model
    # had before, the reference ratios, distortions and the table of every combination
    spatial: Dict[str, object] = field(default_factory=dict)
    fits: bool = True

    @property
    def achieved_ratio(self) -> float:
        return self.macs_after / self.macs_before

    @property
    def predicted_distortion(self) -> Optional[float]:
        """The output distortion the allocation predicted: spatial + weights for a joint
        allocation, else the chosen points of the layers' curves summed; None without
        curves."""
        if self.spatial:
            return float(self.spatial['predicted_distortion'])
        per_layer = [lr.predicted_distortion for lr in self.layers
                     if lr.predicted_distortion is not None]
        return float(sum(per_layer)) if per_layer else None

    @property
    def distortion_gap(self) -> Optional[float]:
        """Measured / predicted output distortion where the measured one is more than
        ``DISTORTION_GAP_FACTOR`` times the predicted (the curves' second-order, additive
        model does not hold at this sparsity), else None."""
        pred, meas = self.predicted_distortion, self.measured_distortion
        if pred is None or meas is None or meas <= DISTORTION_GAP_FACTOR * max(pred, 0.0):
            return None
        return meas / pred if pred > 0 else float('inf')

    def info(self) -> Dict:
        """JSON-ready summary (without the masks)."""
        return dict(method=self.method, estimator=self.estimator,
                    flops_target=self.flops_target, budget_of=self.budget_of,
                    fits=self.fits, macs_before=self.macs_before,
                    macs_after=self.macs_after, achieved_ratio=self.achieved_ratio,
                    macs_after_predicted=self.macs_after_predicted,
                    floor=self.floor, timings=self.timings,
                    measured_distortion=self.measured_distortion,
                    predicted_distortion=self.predicted_distortion,
                    left_out=self.left_out, head_outputs=self.head_outputs, cost=self.cost,
                    spatial=self.spatial,
                    layers=[vars(lr) for lr in self.layers])


def describe_cost(value: float, unit: str) -> str:
    """A cost in its unit: GMACs per frame or milliseconds per frame."""
    return f'{value * 1e3:.2f} ms' if unit == 'seconds' else f'{value / 1e9:.4f} GMACs'


def budget_line(info: Dict) -> str:
    """The budget in one line from a pruning's ``info()`` (or a checkpoint's record): the
    target, what it is a fraction of and that reference's cost, the budget and what the
    pruned model costs."""
    cost = info.get('cost') or {}
    unit = cost.get('unit', 'MACs')
    before = cost.get('before', info.get('macs_before'))
    budget = cost.get('budget', info['flops_target'] * before)
    after = cost.get('after', info.get('macs_after'))
    of = cost.get('reference') or 'the model as given'
    return (f"target {info['flops_target']:.4g} of {of} ({describe_cost(before, unit)} per "
            f'frame) = a budget of {describe_cost(budget, unit)}; the pruned model '
            f'{describe_cost(after, unit)} ({after / before:.4f} of the reference)')


def layer_results(layers: Dict[str, nn.Module], masks: Dict[str, Tensor], flops,
                  counted, curves: Dict[str, dict]) -> List[LayerResult]:
    """The report's row of every pruned layer.

    Args:
        layers (dict[str, nn.Module]): the pruned layers.
        masks (dict[str, Tensor]): their masks.
        flops (CostModel): the joint FLOPs of the model before pruning.
        counted (CostModel): the pruned model's, counted afresh.
        curves (dict[str, dict]): the chosen curves (their ``chosen_distortion``).
    """
    return [LayerResult(n, flops.layers[n].part, m.weight.numel(),
                        1.0 - float(masks[n].float().mean()),
                        flops.layers[n].dense_macs / flops.frames,
                        counted.layer_macs(n, masks[n]) if n in counted.layers else 0.0,
                        curves.get(n, {}).get('chosen_distortion'))
            for n, m in layers.items()]
