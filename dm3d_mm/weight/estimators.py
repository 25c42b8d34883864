"""Distortion estimators: the per-layer curves delta_{i,k} the DP allocates with.

Each is a registered piece (``ESTIMATORS``) selected by ``estimator=`` in the pruning config,
as a name or a ``dict(type=..., **args)``. ``gradient_mode`` tells the calibration pass which
gradient rows to collect; :meth:`curves` turns them (or, for ``actual``, runs of the model)
into one curve per layer over that layer's candidate prune counts.
"""
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

from torch import Tensor, nn

from ..registry import ESTIMATORS
from .calibration import actual_distortion_curves
from .curves import distortion_curve
from .head_outputs import DEFAULT_LAMBDAS


@dataclass
class CurveInputs:
    """What an estimator may use.

    Args:
        layers (dict[str, nn.Module]): the selected layers.
        grads (dict[str, Tensor]): per-layer gradient rows of the calibration pass.
        orders (dict[str, Tensor]): per-layer prune order (flat weight indices).
        counts (dict[str, Tensor]): per-layer candidate prune counts (K + 1 of them).
        model (nn.Module): the detector (the ``actual`` estimator runs it).
        batches (Sequence[dict]): the calibration batches.
        reference (list): the dense head outputs per batch.
        outputs (Callable): the head-output extractor.
        lambdas (tuple[float, float]): box and confidence weights of the distortion.
        progress (bool): show a progress bar where the estimator runs the model.
    """
    layers: Dict[str, nn.Module]
    grads: Dict[str, Tensor]
    orders: Dict[str, Tensor]
    counts: Dict[str, Tensor]
    model: Optional[nn.Module] = None
    batches: Sequence[dict] = ()
    reference: Optional[list] = None
    outputs: Optional[Callable] = None
    lambdas: tuple = DEFAULT_LAMBDAS
    progress: bool = False


class DistortionEstimator:
    """Base of the estimators: ``curves(inputs) -> {layer: (K+1,) distortion}``."""

    #: gradient rows the calibration pass collects for this estimator
    gradient_mode: str = 'hutchinson'

    def curves(self, inputs: CurveInputs) -> Dict[str, Tensor]:
        raise NotImplementedError


@ESTIMATORS.register_module(name='fisher')
class FisherEstimator(DistortionEstimator):
    """Second-order distortion with the empirical Fisher of Hutchinson-projected gradient
    rows: delta_k = dW_k^T (kappa I + G^T G / M) dW_k (``weight/curves.py``).

    Args:
        kappa (float): damping added to the Fisher. Defaults to 0.
    """

    #: the quadratic form of ``distortion_curve``
    form = 'fisher'

    def __init__(self, kappa: float = 0.0):
        self.kappa = float(kappa)

    def curves(self, inputs: CurveInputs) -> Dict[str, Tensor]:
        return {n: distortion_curve(m.weight, inputs.grads[n], len(inputs.counts[n]) - 1,
                                    self.form, self.kappa, order=inputs.orders[n],
                                    counts=inputs.counts[n]).distortion
                for n, m in inputs.layers.items()}


@ESTIMATORS.register_module(name='taylor2')
class Taylor2Estimator(FisherEstimator):
    """The paper's Eq. 9/13 as written: the first-order term g^T dW_k of the summed output
    gradient plus half the Fisher quadratic form.

    Args:
        kappa (float): damping added to the Fisher. Defaults to 0.
    """
    gradient_mode = 'sum'
    form = 'taylor2'


@ESTIMATORS.register_module(name='actual')
class ActualEstimator(DistortionEstimator):
    """The measured distortion (the paper's Tab. 5 reference): each layer pruned alone to
    each candidate count, the calibration frames run, the output distortion measured."""

    def curves(self, inputs: CurveInputs) -> Dict[str, Tensor]:
        return actual_distortion_curves(inputs.model, inputs.layers, inputs.batches,
                                        inputs.reference, inputs.orders, inputs.counts,
                                        inputs.outputs, inputs.lambdas, inputs.progress)
