"""The state of one ``DM3DPruner.prune`` (kept off the pruner, which holds its settings
only)."""
from dataclasses import dataclass, field
from typing import Optional

from ..joint.driver import JointDriver
from .candidates import Candidates
from .stopwatch import Stopwatch


@dataclass
class PruneCall:
    """The state of one ``prune``: this rank's frame ids, the joint part (None without
    spatial sites), the weight candidates (computed once, on the first allocation) and the
    stopwatch of its steps.

    Args:
        frame_ids (list): ids of this rank's calibration frames.
        joint (JointDriver, optional): the joint allocation's part.
        candidates (Candidates, optional): the weight candidates.
        watch (Stopwatch): seconds per step.
    """
    frame_ids: list
    joint: Optional[JointDriver] = None
    candidates: Optional[Candidates] = None
    watch: Stopwatch = field(default_factory=Stopwatch)

    @property
    def sites(self) -> list:
        return self.joint.sites if self.joint is not None else []
