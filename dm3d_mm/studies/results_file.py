"""Resumable results of the ablation tools: a JSON file rewritten atomically after each
finished row or cell, so an interrupted run loses at most the one in progress.

Several runs may share one file (a study split into parts that run side by side). A save
takes the file's lock and merges three ways: what this run changed since it last read or
wrote the file is its own and is written; everything else is taken from the file as it is
now, so no run overwrites (or reverts to a stale copy of) the rows another run saved.
"""
import copy
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


def _merge(ours: Dict, base: Dict, theirs: Dict, deep: bool) -> Dict:
    """Three-way merge of result rows. A row this run changed since ``base`` (its last
    sync with the file) is ``ours``; any other is ``theirs`` where the file has it.
    Bookkeeping sections (keys starting with '_') are merged entry by entry."""
    merged = {}
    for key in {**theirs, **ours}:
        mine, old, file = ours.get(key), base.get(key), theirs.get(key)
        if key in ours and key in theirs and isinstance(mine, dict) and \
                isinstance(file, dict) and (deep or key.startswith('_')):
            merged[key] = _merge(mine, old if isinstance(old, dict) else {}, file, True)
        elif key in ours and (key not in base or mine != old):
            merged[key] = mine
        else:
            merged[key] = file if key in theirs else mine
    return merged


class ResultsFile:
    """One run's handle on a shared results file.

    Args:
        path (str): the JSON file.
    """

    def __init__(self, path: str):
        self.path = path
        self._synced: Dict = {}

    def load(self) -> Dict:
        """The results saved so far (a fresh dict the caller may fill)."""
        self._synced = load_results(self.path)
        return copy.deepcopy(self._synced)

    def save(self, results: Dict) -> None:
        """Write ``results`` merged with what other runs saved since this run's last load
        or save, through a temporary file (never half-written); ``results`` is updated in
        place to the merged rows."""
        os.makedirs(osp.dirname(osp.abspath(self.path)), exist_ok=True)
        with open(self.path + '.lock', 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            merged = _merge(results, self._synced, load_results(self.path), deep=False)
            tmp = f'{self.path}.{os.getpid()}.tmp'
            with open(tmp, 'w') as f:
                json.dump(merged, f, indent=1)
            os.replace(tmp, self.path)
        results.clear()
        results.update(merged)
        self._synced = copy.deepcopy(merged)
