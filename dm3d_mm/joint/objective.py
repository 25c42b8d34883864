"""What the joint allocation minimises over the combinations of keep ratios
(``JOINT_OBJECTIVES``).

For one combination ``r`` DM3D's DP gives the weight choice of least summed weight
distortion ``D_w(r)`` within the budget; the objective then compares combinations from
their spatial distortion ``D_s(r)`` and ``D_w(r)``. Both are head-output distortions on the
calibration frames, measured before any fine-tune. An objective is monotone in ``D_w``, so
it never changes the DP's choice at a combination, only which combination wins.

- ``sum`` (:class:`SumObjective`, the default): ``D_s + D_w``, the predicted distortion of
  the pruned model (DM3D's additive model extended by the spatial term).
- ``saturating_weight`` (:class:`SaturatingWeightObjective`):
  ``D_s + c * log(1 + D_w / c)``. Equal to the sum for ``D_w`` well below ``c``; above it a
  further unit of weight distortion counts less the more there is: the hypothesis that the
  fine-tune recovers a large weight distortion (the weights retrain) more than the voxels a
  keep ratio drops. ``c`` is in the units of the head-output distortion, so it belongs to a
  detector and its extractor. On the demo SECOND no ``c`` orders every budget as the
  fine-tuned models do (docs/joint_allocation.md); the sum stays the default.
"""
import math

from ..errors import UserError
from ..registry import JOINT_OBJECTIVES, build_piece


@JOINT_OBJECTIVES.register_module(name='sum')
class SumObjective:
    """``D_s + D_w``: the predicted distortion of the combination's pruned model."""

    def __call__(self, spatial: float, weight: float) -> float:
        """The objective of a combination.

        Args:
            spatial (float): its spatial distortion ``D_s``.
            weight (float): the summed weight distortion ``D_w`` of its DP choice.
        """
        return float(spatial) + float(weight)

    @property
    def spec(self) -> dict:
        """The objective as a config: equal specs choose alike."""
        return dict(type='sum')


@JOINT_OBJECTIVES.register_module(name='saturating_weight')
class SaturatingWeightObjective:
    """``D_s + c * log(1 + D_w / c)`` (see the module docstring).

    Args:
        scale (float): ``c``, the weight distortion from which a further unit counts
            markedly less (> 0).
    """

    def __init__(self, scale: float):
        if not float(scale) > 0:
            raise UserError(f'saturating_weight objective: scale must be > 0, got {scale}')
        self.scale = float(scale)

    def __call__(self, spatial: float, weight: float) -> float:
        """The objective of a combination.

        Args:
            spatial (float): its spatial distortion ``D_s``.
            weight (float): the summed weight distortion ``D_w`` (>= 0) of its DP choice.
        """
        return float(spatial) + self.scale * math.log1p(max(float(weight), 0.0) / self.scale)

    @property
    def spec(self) -> dict:
        """The objective as a config: equal specs choose alike."""
        return dict(type='saturating_weight', scale=self.scale)


def build_objective(cfg) -> object:
    """An objective from its registered name or a ``dict(type=...)`` config."""
    return build_piece(cfg, JOINT_OBJECTIVES, 'joint objective',
                       (SumObjective, SaturatingWeightObjective))


def objective_spec(cfg) -> dict:
    """The canonical config of an objective given by name, config or instance (``'sum'``
    and ``dict(type='sum')`` alike, a scale as a float): what a record compares.

    Args:
        cfg (str | dict | object): a ``JOINT_OBJECTIVES`` name, config or piece.
    """
    return build_objective(cfg).spec
