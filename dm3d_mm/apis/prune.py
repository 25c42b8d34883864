"""prune(): calibration frames from a config, the registry-built pruner, pruned checkpoint and
reports. Used by tools/prune.py and the benchmarks."""
import json
import os
import os.path as osp
from typing import Dict, Optional, Sequence

from ..joint.sites import keep_ratios_into_config
from ..pruning.builder import build_pruner
from ..pruning.calib_frames import calibration_batches, resolve_calib
from ..pruning.checkpoint import save_pruned_checkpoint
from ..pruning.result import PruneResult

__all__ = ['build_pruner', 'calibration_batches', 'resolve_calib', 'write_reports',
           'save_result', 'write_pruned_config', 'count_reference']


def write_reports(result: PruneResult, out_dir: str, extra: Optional[Dict] = None) -> Dict:
    """prune_report.json, prune_report.md and layer_sparsity.png in out_dir.

    Args:
        result (PruneResult): what the pruner returned.
        out_dir (str): the directory written.
        extra (dict, optional): more entries of the JSON report. Defaults to None.

    Returns:
        dict: the JSON report.
    """
    from ..pruning.report import markdown_report, sparsity_plot
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
    """Save the pruned model with its masks and the pruning's record (``meta['dm3d']``:
    allocation, FLOPs, chosen keep ratios), from which the fine-tuning hook and the tools
    read them.

    Args:
        model (nn.Module): the pruned detector.
        result (PruneResult): its pruning.
        path (str): the checkpoint written.
        source (str, optional): the checkpoint it was pruned from.
        config (str): the config it was built from.
        extra (dict, optional): more entries of the record. Defaults to None.

    Returns:
        str: ``path``.
    """
    info = dict(result.info(), **dict(extra or {}, config=config))
    info.pop('layers')
    info['allocation'] = {lr.name: lr.ratio for lr in result.layers}
    return save_pruned_checkpoint(path, model, result.masks, info, source=source,
                                  base_meta=dict(dataset_meta=getattr(model, 'dataset_meta',
                                                                      None)))


def write_pruned_config(model, result: PruneResult, config: str, path: str) -> Optional[str]:
    """For a joint pruning (keep ratios chosen): ``path``, a config inheriting ``config`` with
    the chosen keep ratios in the model, so that plain mmdet3d (``tools/test.py``) runs the
    pruned checkpoint as it was pruned. None (nothing written) for a weight-only pruning.

    Args:
        model (nn.Module): the pruned detector.
        result (PruneResult): its pruning.
        config (str): the config it was built from.
        path (str): where to write.

    Returns:
        str | None: ``path`` or None.
    """
    ratios = (result.spatial or {}).get('keep_ratios')
    if not ratios:
        return None
    overrides: Dict = {}
    keep_ratios_into_config(overrides, model, ratios)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        f.write(f'# {osp.basename(config)} with the spatial keep ratios the joint pruning '
                f'chose\n_base_ = [{osp.abspath(config)!r}]\nmodel = {overrides!r}\n')
    return path


def count_reference(config: str, checkpoint: str, batches: Sequence[dict], device: str,
                    cfg_options: Optional[Dict] = None) -> Dict:
    """The ``reference`` of a pruner (``dict(name=..., gmacs=...)``): the joint GMACs per
    frame of the detector ``config`` + ``checkpoint`` (e.g. the dense detector a spatial
    model was trained from), counted on ``batches``, the pruning's calibration frames.

    Args:
        config (str): the reference detector's config.
        checkpoint (str): its weights.
        batches (Sequence[dict]): the frames (one per batch) the pruning counts on.
        device (str): where it runs.
        cfg_options (dict, optional): config overrides. Defaults to None.

    Returns:
        dict: ``name`` (config and checkpoint) and ``gmacs``.
    """
    from .config_utils import load_config
    from .flops import joint_gmacs
    from .model import build_detector
    model = build_detector(load_config(config, cfg_options), checkpoint, device)
    return dict(name=f'{osp.basename(config)} with {osp.basename(checkpoint)}',
                gmacs=joint_gmacs(model, batches))
