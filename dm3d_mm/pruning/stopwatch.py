"""Seconds per step of one prune (the report's timings): one helper for every step."""
import time
from contextlib import contextmanager
from typing import Dict, Iterator


class Stopwatch:
    """Accumulates wall seconds per named step.

    ``with watch.time('curves'): ...`` adds the block's seconds to ``curves``;
    ``watch.add(key, seconds)`` books (or, negative, takes back) seconds measured otherwise,
    e.g. the spatial combinations a search counted inside another step's block.
    """

    def __init__(self):
        self.seconds: Dict[str, float] = {}

    def add(self, key: str, seconds: float) -> None:
        """Add ``seconds`` to step ``key``.

        Args:
            key (str): the step.
            seconds (float): wall seconds (negative: taken back from the step).
        """
        self.seconds[key] = self.seconds.get(key, 0.0) + seconds

    @contextmanager
    def time(self, key: str) -> Iterator[None]:
        """Book the wall time of the ``with`` block to step ``key``.

        Args:
            key (str): the step.
        """
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(key, time.perf_counter() - start)


class Lap:
    """Wall seconds since it was made (for a step booked only once it is known to be one)."""

    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
