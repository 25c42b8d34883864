"""The demo workflow on the embedded benchmark: train a demo checkpoint, evaluate one."""
import copy
import json
import os
import os.path as osp
import time
from typing import Dict, Optional

import torch
from mmengine.runner.checkpoint import get_state_dict, save_checkpoint, weights_to_cpu

from ..errors import MissingFile
from .config_utils import load_config
from .kitti_summary import summarize_kitti_metrics

DENSE_DEMO_CONFIGS = ('configs/demo/second_synth-kitti_cpu.py',
                      'configs/demo/pointpillars_synth-kitti_cpu.py',
                      'configs/demo/centerpoint_synth-kitti_cpu.py')
# spatially pruned demo detectors, trained the way their methods train: SPS-Conv from scratch
# with the pruning in place; Ada3D in three steps (each step loads the one before)
SPATIAL_DEMO_CONFIGS = ('configs/demo/second_synth-kitti_cpu_spss50.py',
                        'configs/demo/second_synth-kitti_cpu_spss50_fg-margin.py',
                        'configs/demo/centerpoint_synth-kitti_cpu_spss50_fg-margin.py',
                        'configs/demo/second_synth-kitti_cpu_ada3d_stage1.py',
                        'configs/demo/second_synth-kitti_cpu_ada3d_stage2.py',
                        'configs/demo/second_synth-kitti_cpu_ada3d.py',
                        'configs/demo/centerpoint_synth-kitti_cpu_ada3d_stage1.py',
                        'configs/demo/centerpoint_synth-kitti_cpu_ada3d_stage2.py',
                        'configs/demo/centerpoint_synth-kitti_cpu_ada3d.py')
DEMO_CONFIGS = DENSE_DEMO_CONFIGS + SPATIAL_DEMO_CONFIGS


def config_name(config: str) -> str:
    return osp.splitext(osp.basename(config))[0]


def ensure_demo_checkpoint(config: str, data_root: str,
                           out_dir: str = 'checkpoints') -> str:
    """``out_dir/<config>.pth``, trained first if missing, after the demo checkpoint that
    the config starts from (its ``load_from``), if that one is missing too."""
    ckpt = osp.join(out_dir, f'{config_name(config)}.pth')
    if osp.isfile(ckpt):
        return ckpt
    start = load_config(config).get('load_from')
    if start and not osp.isfile(start):
        before = osp.join(osp.dirname(config), f'{config_name(start)}.py')
        if not osp.isfile(before):
            raise MissingFile(f'{config} starts from {start}, which is missing and is '
                                    'not a demo checkpoint')
        ensure_demo_checkpoint(before, data_root, out_dir)
    train_demo_checkpoint(config, data_root, out_dir)
    return ckpt


def evaluate_checkpoint(config: str, checkpoint: Optional[str], data_root: str,
                        work_dir: str, cfg_options: Optional[dict] = None,
                        ann_files: Optional[Dict[str, str]] = None) -> Dict[str, float]:
    """KittiMetric results of a checkpoint on the val split, through mmengine's test loop
    (a pruned checkpoint's keep ratios go into the config first).

    Args:
        config (str): the config file.
        checkpoint (str, optional): the weights; None: untrained.
        data_root (str): the dataset root the config is pointed at.
        work_dir (str): the Runner's work dir.
        cfg_options (dict, optional): overrides merged into the config. Defaults to None.
        ann_files (dict[str, str], optional): split -> info file name (``--ann-file``).
            Defaults to None.

    Returns:
        dict: the metrics.
    """
    from mmengine.runner import Runner
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise MissingFile(f'checkpoint not found: {checkpoint}')
    cfg = load_config(config, cfg_options=cfg_options, work_dir=work_dir, data_root=data_root,
                      ann_files=ann_files)
    cfg.load_from = checkpoint
    if checkpoint is not None:
        checkpoint_keep_ratios_into_config(cfg, checkpoint)
    return Runner.from_cfg(cfg).test()


def checkpoint_keep_ratios_into_config(cfg, checkpoint: str) -> Dict[str, float]:
    """Write the keep ratios a joint pruning stored in ``checkpoint`` (``meta['dm3d']``)
    into ``cfg.model``, so that a Runner built from ``cfg`` runs the pruned model as it was
    pruned; returns them ({} for any other checkpoint).

    Args:
        cfg (Config): the config the checkpoint is run with (changed in place).
        checkpoint (str): the checkpoint file.
    """
    from mmdet3d.registry import MODELS
    from mmengine.runner.checkpoint import _load_checkpoint

    from ..joint.sites import checkpoint_keep_ratios, keep_ratios_into_config
    from ..pruning.checkpoint import read_dm3d_meta
    ratios = checkpoint_keep_ratios(read_dm3d_meta(_load_checkpoint(checkpoint,
                                                                    map_location='cpu')))
    if ratios:
        keep_ratios_into_config(cfg.model, MODELS.build(copy.deepcopy(cfg.model)), ratios)
    return ratios


def evaluate_model(model: torch.nn.Module, cfg, work_dir: str) -> Dict:
    """Per-class KITTI AP (``summarize_kitti_metrics``) of an in-memory model on the
    config's test split, through mmengine's test loop. The model evaluated is ``model``
    itself, on its device, with every setting it carries outside its state_dict (keep ratios
    set on it, for example); its train / eval mode is restored afterwards.

    Args:
        model (nn.Module): the detector.
        cfg (Config): its config (the test split, evaluator and loops).
        work_dir (str): the Runner's work dir.

    Returns:
        dict: class -> {'easy', 'moderate', 'hard'} 3D AP40.
    """

    from mmengine.runner import Runner
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    cfg.load_from = None
    runner = Runner.from_cfg(cfg)
    runner.model = model  # the instance, not the one the config builds
    was_training = model.training
    try:
        return summarize_kitti_metrics(runner.test())
    finally:
        model.train(was_training)


def train_demo_checkpoint(config: str, data_root: str, out_dir: str = 'checkpoints',
                          work_root: str = 'work_dirs/demo_checkpoints') -> Dict:
    """Train a demo config, evaluate it once, save weights-only checkpoint + JSON summary."""
    from mmengine.runner import Runner
    name = config_name(config)
    cfg = load_config(config, work_dir=osp.join(work_root, name), data_root=data_root)
    cfg.train_cfg.val_interval = cfg.train_cfg.max_epochs + 1  # evaluated once below
    runner = Runner.from_cfg(cfg)
    t0 = time.time()
    runner.train()
    train_s = time.time() - t0
    metrics = runner.test()
    os.makedirs(out_dir, exist_ok=True)
    ckpt = osp.join(out_dir, f'{name}.pth')
    meta = dict(config=config, train_seconds=round(train_s, 1),
                epochs=cfg.train_cfg.max_epochs, torch=torch.__version__)
    tmp = ckpt + '.tmp'
    save_checkpoint(dict(state_dict=weights_to_cpu(get_state_dict(runner.model)), meta=meta),
                    tmp)
    os.replace(tmp, ckpt)  # never leave a half-written checkpoint behind
    summary = dict(meta, checkpoint=ckpt, metrics_3d=summarize_kitti_metrics(metrics),
                   metrics_bev=summarize_kitti_metrics(metrics, 'BEV'))
    with open(osp.join(out_dir, f'{name}.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    return summary
