"""Progress bars only where someone watches them: on a terminal. In a non-TTY log (CI, a
nohup'd training, ``make demo > log``) every update of mmengine's ``ProgressBar`` would be a
line of its own."""
import sys
from typing import Optional

from mmengine.utils import ProgressBar


def progress_bar(total: int, enabled: bool = True) -> Optional[ProgressBar]:
    """mmengine's ``ProgressBar`` of ``total`` steps where ``enabled`` and stdout is a
    terminal, else None (the caller skips its updates).

    Args:
        total (int): the steps (0: unknown, a counter).
        enabled (bool): whether the caller wants one. Defaults to True.
    """
    return ProgressBar(total) if enabled and sys.stdout.isatty() else None
