"""prune(): calibration frames from a config, the registry-built pruner, pruned checkpoint and
reports. Used by tools/prune.py and the benchmarks."""
import json
import os
import os.path as osp
from typing import Dict, Optional

from ..weight.builder import build_pruner
from ..weight.calib_frames import calibration_batches, resolve_calib
from ..weight.checkpoint import save_pruned_checkpoint
from ..weight.pruner import PruneResult

__all__ = ['build_pruner', 'calibration_batches', 'resolve_calib', 'write_reports',
           'save_result']


def write_reports(result: PruneResult, out_dir: str, extra: Optional[Dict] = None) -> Dict:
    """prune_report.json, prune_report.md and layer_sparsity.png in out_dir."""
    from ..weight.report import markdown_report, sparsity_plot
    os.makedirs(out_dir, exist_ok=True)
    info = dict(result.info(), **(extra or {}))
    info['curves'] = result.curves
    paths = dict(json=osp.join(out_dir, 'prune_report.json'),
                 md=osp.join(out_dir, 'prune_report.md'),
                 png=osp.join(out_dir, 'layer_sparsity.png'))
    with open(paths['json'], 'w') as f:
        json.dump(info, f, indent=1)
    with open(paths['md'], 'w') as f:
        f.write(markdown_report(result, extra))
    sparsity_plot(result, paths['png'])
    return paths


def save_result(model, result: PruneResult, path: str, source: Optional[str],
                config: str, extra: Optional[Dict] = None) -> str:
    info = dict(result.info(), **dict(extra or {}, config=config))
    info.pop('layers')
    info['allocation'] = {lr.name: lr.ratio for lr in result.layers}
    return save_pruned_checkpoint(path, model, result.masks, info, source=source,
                                  base_meta=dict(dataset_meta=getattr(model, 'dataset_meta',
                                                                      None)))
