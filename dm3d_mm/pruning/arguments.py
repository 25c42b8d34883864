"""The checks of ``DM3DPruner``'s arguments: each knob out of range is a one-line
:class:`~dm3d_mm.errors.UserError` at construction, naming the knob and the value."""
from typing import Optional, Sequence

from ..errors import UserError
from ..weight.head_outputs import BOX_WEIGHTINGS

#: what ``flops_target`` is a fraction of: the whole detector or the selected layers' own
BUDGET_OF = ('model', 'parts')


def check_pruner_arguments(flops_target: float, min_density: float, max_density: float,
                           kappa: float, box_weighting: str, budget_of: str,
                           lambdas: Sequence[float], reference: Optional[dict],
                           **integers: int) -> None:
    """Raise a one-line error for the first argument out of range.

    Args:
        flops_target (float): in (0, 1].
        min_density (float): with ``max_density``: 0 <= min <= max <= 1.
        max_density (float): see ``min_density``.
        kappa (float): >= 0.
        box_weighting (str): one of ``BOX_WEIGHTINGS``.
        budget_of (str): one of ``BUDGET_OF``.
        lambdas (Sequence[float]): two non-negative weights, not both 0.
        reference (dict, optional): ``dict(name=..., gmacs=...)`` with gmacs > 0.
        **integers (int): name -> value of integer knobs, each >= 1 (``seed`` >= 0).
    """
    if isinstance(flops_target, bool) or not isinstance(flops_target, (int, float)) \
            or not 0 < flops_target <= 1:
        raise UserError(f'flops_target is a fraction of the dense FLOPs in (0, 1], got '
                        f'{flops_target}')
    if not 0 <= min_density <= max_density <= 1:
        raise UserError('need 0 <= min_density <= max_density <= 1')
    for name, value in integers.items():
        least = 0 if name == 'seed' else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UserError(f'pruning config: {name} is an integer >= {least}, got {value!r}')
    if kappa < 0:
        raise UserError(f'pruning config: kappa damps the Fisher and is >= 0, got {kappa}')
    if box_weighting not in BOX_WEIGHTINGS:
        raise UserError(f'box_weighting must be one of {BOX_WEIGHTINGS}, got {box_weighting!r}')
    if budget_of not in BUDGET_OF:
        raise UserError(f'budget_of must be one of {BUDGET_OF}, got {budget_of!r}')
    values = tuple(float(v) for v in lambdas)
    if len(values) != 2 or min(values) < 0 or max(values) == 0:
        raise UserError(f'lambdas = (lambda_b, lambda_c) must be two non-negative weights, '
                        f'not both 0; got {lambdas}')
    if reference is not None and (
            set(reference) != {'name', 'gmacs'} or not float(reference['gmacs']) > 0):
        raise UserError("pruning config: reference is dict(name=..., gmacs=...) with "
                        f'gmacs > 0, got {reference!r}')
