"""Resumable results of the ablation tools: a JSON file rewritten atomically after each
finished row or cell, so an interrupted run loses at most the one in progress.

Several runs may share one file (a study split into parts that run side by side): a save
takes the file's lock, adds the rows the others have written since this run loaded it, and
writes the union, so no run overwrites another's rows.
"""
import fcntl
import json
import os
import os.path as osp
from typing import Dict


def load_results(path: str) -> Dict:
    """The results saved at ``path`` ({} when there are none yet)."""
    if not osp.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _merge(into: Dict, other: Dict, deep: bool) -> None:
    """Add ``other``'s entries missing from ``into``. A row (top-level key) present in both
    is ``into``'s; bookkeeping sections (keys starting with '_') are merged entry by entry."""
    for key, value in other.items():
        if key not in into:
            into[key] = value
        elif isinstance(into[key], dict) and isinstance(value, dict) and \
                (deep or key.startswith('_')):
            _merge(into[key], value, deep=True)


def save_results(path: str, results: Dict) -> None:
    """Write ``results`` to ``path`` through a temporary file (never half-written), merged
    with the rows other runs saved there meanwhile; ``results`` receives those rows too."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path + '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _merge(results, load_results(path), deep=False)
        tmp = f'{path}.{os.getpid()}.tmp'
        with open(tmp, 'w') as f:
            json.dump(results, f, indent=1)
        os.replace(tmp, path)
