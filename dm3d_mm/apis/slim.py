"""Export a channel-pruned detector as a smaller dense model: its config (widths rewritten,
pruning hooks removed, a joint pruning's keep ratios written in, ``load_from`` the slim
weights) and checkpoint, which plain mmdet3d
builds, loads and fine-tunes with ``tools/train.py`` like any model."""
import os
import os.path as osp
from typing import Dict, Optional

from mmengine.config import Config
from mmengine.runner.checkpoint import save_checkpoint

from ..errors import UserError, WouldOverwrite
from ..structured.slim import group_widths, slim
from .demo import checkpoint_keep_ratios_into_config
from .model import build_detector


def _without_pruning(cfg: Config) -> None:
    """The slim model is the pruned result: a config that prunes again would be wrong."""
    cfg.pop('pruning', None)
    hooks = [h for h in cfg.get('custom_hooks', None) or []
             if h.get('type') not in ('DM3DPruningHook', 'dm3d_mm.DM3DPruningHook')]
    cfg.custom_hooks = hooks


def export_slim(cfg: Config, checkpoint: str, out_dir: str, name: str,
                strict: bool = True, device: Optional[str] = 'cpu') -> Dict:
    """Slim ``checkpoint`` (a model built from ``cfg``) into ``out_dir/<name>.py`` and
    ``out_dir/<name>.pth``: the zero channels cut out, the widths and the keep ratios of a
    joint pruning written into the exported config.

    Args:
        cfg (Config): the config the checkpoint was pruned with.
        checkpoint (str): the channel-pruned checkpoint.
        out_dir (str): where the config and checkpoint go.
        name (str): their file name, without extension.
        strict (bool): see :func:`~dm3d_mm.apis.model.load_weights`. Defaults to True.
        device (str, optional): where the model is built. Defaults to 'cpu'.

    Returns:
        dict: ``config``, ``checkpoint``, ``widths`` and ``widths_before``.
    """
    ckpt_out = osp.join(out_dir, f'{name}.pth')
    cfg_out = osp.join(out_dir, f'{name}.py')
    if osp.exists(ckpt_out) and osp.samefile(ckpt_out, checkpoint):
        raise WouldOverwrite(f'refusing to overwrite the input checkpoint {checkpoint}')
    model = build_detector(cfg, checkpoint, device, strict=strict)
    before = group_widths(model)
    new_cfg, state_dict, widths = slim(cfg, model)
    if widths == before:
        raise UserError(f'{checkpoint} has no removable channel (a channel is removable '
                         "when DM3DPruner(granularity='channel') zeroed its weights and norm)")
    _without_pruning(new_cfg)
    # a joint pruning's keep ratios (in force on ``model`` from the checkpoint) run with it
    ratios = checkpoint_keep_ratios_into_config(new_cfg, checkpoint)
    new_cfg.load_from = ckpt_out
    os.makedirs(out_dir, exist_ok=True)
    tmp = ckpt_out + '.tmp'
    meta = dict(slim=dict(source=checkpoint, widths=widths, widths_before=before,
                          keep_ratios=ratios))
    save_checkpoint(dict(state_dict=state_dict, meta=meta), tmp)
    os.replace(tmp, ckpt_out)
    new_cfg.dump(cfg_out)
    return dict(config=cfg_out, checkpoint=ckpt_out, widths=widths, widths_before=before)
