"""Resumable results of the ablation tools: a JSON file rewritten atomically after each
finished row or cell, so an interrupted run loses at most the one in progress."""
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


def save_results(path: str, results: Dict) -> None:
    """Write ``results`` to ``path`` through a temporary file (never half-written)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, path)
