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
# with the pruning in place; Ada3D in three steps (each step loads the one before); the Ada3D
# CenterPoint also with a dense teacher in its two detector-training steps (configs/distill)
SPATIAL_DEMO_CONFIGS = ('configs/demo/second_synth-kitti_cpu_spss50.py',
                        'configs/demo/second_synth-kitti_cpu_spss50_fg-margin.py',
                        'configs/demo/centerpoint_synth-kitti_cpu_spss50_fg-margin.py',
                        'configs/demo/second_synth-kitti_cpu_ada3d_stage1.py',
                        'configs/demo/second_synth-kitti_cpu_ada3d_stage2.py',
                        'configs/demo/second_synth-kitti_cpu_ada3d.py',
                        'configs/demo/centerpoint_synth-kitti_cpu_ada3d_stage1.py',
                        'configs/demo/centerpoint_synth-kitti_cpu_ada3d_stage2.py',
                        'configs/demo/centerpoint_synth-kitti_cpu_ada3d.py',
                        'configs/distill/centerpoint_synth-kitti_cpu_ada3d-kd_stage1.py',
                        'configs/distill/centerpoint_synth-kitti_cpu_ada3d-kd_stage2.py',
                        'configs/distill/centerpoint_synth-kitti_cpu_ada3d-kd.py')
DEMO_CONFIGS = DENSE_DEMO_CONFIGS + SPATIAL_DEMO_CONFIGS
#: where the config that writes a demo checkpoint (or a teacher) of the same name lives
DEMO_CONFIG_DIRS = ('configs/demo', 'configs/distill', 'configs/demo/studies')


def config_name(config: str) -> str:
    return osp.splitext(osp.basename(config))[0]


def config_making(checkpoint: str) -> Optional[str]:
    """The demo config whose training writes ``checkpoint`` (``<name>.pth`` is made by
    ``<name>.py`` in one of :data:`DEMO_CONFIG_DIRS`), or None.

    Args:
        checkpoint (str): a checkpoint path.
    """
    name = config_name(checkpoint)
    for folder in DEMO_CONFIG_DIRS:
        config = osp.join(folder, f'{name}.py')
        if osp.isfile(config):
            return config
    return None


def ensure_demo_checkpoint(config: str, data_root: str, out_dir: str = 'checkpoints',
                           work_root: str = 'work_dirs/demo_checkpoints') -> str:
    """``out_dir/<config>.pth``, trained first if missing (after the checkpoints it starts
    from or distils from, if those are missing too: see :func:`train_demo_checkpoint`).

    Args:
        config (str): the demo config.
        data_root (str): the dataset root.
        out_dir (str): where its checkpoint lies. Defaults to 'checkpoints'.
        work_root (str): the Runner's work dirs. Defaults to 'work_dirs/demo_checkpoints'.
    """
    ckpt = osp.join(out_dir, f'{config_name(config)}.pth')
    if not osp.isfile(ckpt):
        train_demo_checkpoint(config, data_root, out_dir, work_root)
    return ckpt


def _ensure_inputs(config: str, cfg, data_root: str, work_root: str) -> None:
    """Train the checkpoints ``cfg`` starts from (``load_from``) or distils from
    (``distill.teacher.checkpoint``) where they are missing, each with the demo config of
    its name; a missing one that no demo config makes is a one-line error."""
    teacher = (cfg.get('distill') or {}).get('teacher') or {}
    for needed in (cfg.get('load_from'), teacher.get('checkpoint')):
        if not needed or osp.isfile(needed):
            continue
        maker = config_making(needed)
        if maker is None:
            raise MissingFile(f'{config} needs {needed}, which is missing and is not made '
                              'by a demo config')
        ensure_demo_checkpoint(maker, data_root, osp.dirname(needed) or '.', work_root)


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
                          work_root: str = 'work_dirs/demo_checkpoints', seed: int = 0) -> Dict:
    """Train a demo config, evaluate it once, save weights-only checkpoint + JSON summary.
    The checkpoints it starts from or distils from are trained first where they are missing
    (with the demo configs of their names).

    Args:
        config (str): the demo config.
        data_root (str): the dataset root.
        out_dir (str): where ``<config>.pth`` and ``<config>.json`` go. Defaults to
            'checkpoints'.
        work_root (str): the Runner's work dirs. Defaults to 'work_dirs/demo_checkpoints'.
        seed (int): the training's seed (``randomness.seed``; ``tools/train.py`` with
            ``--cfg-options randomness.seed=0`` trains the same model). Defaults to 0.

    Returns:
        dict: the summary (also written as JSON).
    """
    from mmengine.runner import Runner
    name = config_name(config)
    cfg = load_config(config, work_dir=osp.join(work_root, name), data_root=data_root)
    cfg.randomness = dict(cfg.get('randomness') or {}, seed=seed)
    _ensure_inputs(config, cfg, data_root, work_root)
    cfg.train_cfg.val_interval = cfg.train_cfg.max_epochs + 1  # evaluated once below
    runner = Runner.from_cfg(cfg)
    t0 = time.time()
    runner.train()
    train_s = time.time() - t0
    metrics = runner.test()
    os.makedirs(out_dir, exist_ok=True)
    ckpt = osp.join(out_dir, f'{name}.pth')
    meta = dict(config=config, seed=seed, train_seconds=round(train_s, 1),
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
