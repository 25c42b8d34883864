"""Which combinations of keep ratios the joint allocation counts (``SPATIAL_SEARCHES``).

A search drives ``score(ratios)``: the objective of the best weight allocation within the
budget at that combination (spatial distortion + DM3D's weight distortion), None where
nothing fits. Every scored combination costs one forward over the calibration frames (its
pairs counted, its distortion measured; the caller keeps each combination once, and the
ratios in force come counted with the calibration pass), and the joint choice is the least
objective over the combinations scored.

- ``grid`` (:class:`GridSearch`, the default): every combination, ``prod(len(values))``
  scores; the optimum of the objective over the grid.
- ``coordinate`` (:class:`CoordinateSearch`): coordinate descent from the best combination
  scored so far (the ratios in force among them): one site at a time, the others fixed, a
  walk from the site's value towards larger values and one towards smaller ones, each
  stopping at the first value that fits the budget and scores no better than the best of
  the walk (``walk='until_worse'``, the default; ``walk='all'``: every value of the site),
  moving to the best; sweeps until none moves. At most
  ``1 + max_sweeps * sum(len(values) - 1)`` scores; it returns a combination that no
  single-site change to a neighbouring value (``walk='all'``: to any value) improves, not
  necessarily the grid optimum.
"""
import itertools
from typing import Callable, Dict, List, Optional

from ..errors import UserError
from ..registry import SPATIAL_SEARCHES, build_piece

Score = Callable[[Dict[str, float]], Optional[float]]


@SPATIAL_SEARCHES.register_module(name='grid')
class GridSearch:
    """Every combination of the sites' values (site order, largest value first)."""

    def run(self, candidates: Dict[str, List[float]], start: Dict[str, float],
            score: Score) -> bool:
        """Score every combination.

        Args:
            candidates (dict[str, list[float]]): site -> its values.
            start (dict[str, float]): the best combination scored so far (unused).
            score (Callable): combination -> objective, or None where nothing fits.

        Returns:
            bool: True (the grid is always searched whole).
        """
        for combo in itertools.product(*candidates.values()):
            score(dict(zip(candidates, combo)))
        return True


@SPATIAL_SEARCHES.register_module(name='coordinate')
class CoordinateSearch:
    """Coordinate descent over the sites (see the module docstring).

    Args:
        max_sweeps (int): passes over every site at most. Defaults to 3.
        walk (str): how far from its value a site's values are scored in a sweep:
            'until_worse' (in each direction up to the first value that fits and does not
            improve) or 'all'. Defaults to 'until_worse'.
    """
    WALKS = ('until_worse', 'all')

    def __init__(self, max_sweeps: int = 3, walk: str = 'until_worse'):
        if int(max_sweeps) < 1:
            raise UserError(f'coordinate search: max_sweeps must be at least 1, got '
                             f'{max_sweeps}')
        if walk not in self.WALKS:
            raise UserError(f'coordinate search: walk must be one of {self.WALKS}, got '
                             f'{walk!r}')
        self.max_sweeps, self.walk = int(max_sweeps), walk

    def run(self, candidates: Dict[str, List[float]], start: Dict[str, float],
            score: Score) -> bool:
        """Descend from ``start`` one site at a time.

        Args:
            candidates (dict[str, list[float]]): site -> its values.
            start (dict[str, float]): the combination to start from.
            score (Callable): combination -> objective, or None where nothing fits.

        Returns:
            bool: whether the descent converged (a sweep moved no site); False when it
            stopped at ``max_sweeps`` still moving, so that a single-site change may still
            improve the combination it ends at.
        """
        current = dict(start)
        best = score(current)
        for _ in range(self.max_sweeps):
            moved = False
            for name, values in candidates.items():
                here = values.index(current[name])
                base, site_best, site_value = dict(current), best, current[name]
                # towards larger values, then towards smaller ones
                for path in (values[here - 1::-1] if here else [], values[here + 1:]):
                    walk_best = best  # the value the walk started from
                    for v in path:
                        s = score(dict(base, **{name: v}))
                        if s is not None and (site_best is None or s < site_best):
                            site_best, site_value = s, v
                        if self.walk == 'until_worse' and s is not None and \
                                walk_best is not None and s >= walk_best:
                            break
                        if s is not None and (walk_best is None or s < walk_best):
                            walk_best = s
                if site_value != current[name]:
                    current, best, moved = dict(base, **{name: site_value}), site_best, True
            if not moved:
                return True
        return False


def build_spatial_search(cfg) -> object:
    """A search from its registered name or a ``dict(type=...)`` config."""
    return build_piece(cfg, SPATIAL_SEARCHES, 'spatial search', (GridSearch, CoordinateSearch))
