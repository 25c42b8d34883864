"""Fine-tune a (pruned) config with mmengine's Runner and evaluate the result."""
import os.path as osp
import time
from typing import Dict, Optional

from ..errors import MissingFile
from .config_utils import load_config


def finetune_and_test(config: str, data_root: str, work_dir: str,
                      load_from: Optional[str] = None, epochs: Optional[int] = None,
                      cfg_options: Optional[dict] = None) -> Dict:
    """Train ``config`` (from ``load_from`` if given) with mmengine's Runner, then test.

    Args:
        config (str): the config file (its pruning hook keeps a pruned checkpoint's masks).
        data_root (str): the dataset root the config is pointed at.
        work_dir (str): the Runner's work dir.
        load_from (str, optional): the checkpoint to start from. Defaults to None.
        epochs (int, optional): the schedule's length (its epoch-based phases end with it);
            None: the config's. Defaults to None.
        cfg_options (dict, optional): overrides merged into the config. Defaults to None.

    Returns:
        dict: ``metrics`` (val), ``checkpoint`` (the last one) and ``train_seconds``.
    """
    from mmengine.runner import Runner
    cfg = load_config(config, cfg_options=cfg_options, work_dir=work_dir, data_root=data_root)
    if load_from is not None:
        if not osp.isfile(load_from):
            raise MissingFile(f'checkpoint to fine-tune from not found: {load_from}')
        cfg.load_from = load_from
    if epochs is not None:
        # the schedule's epoch-based phases end with the new length, not the config's
        old = cfg.train_cfg.max_epochs
        cfg.train_cfg.max_epochs = epochs
        for sched in cfg.get('param_scheduler', None) or []:
            if sched.get('by_epoch', True) and sched.get('end') == old:
                sched['end'] = epochs
                if sched.get('T_max') == old:
                    sched['T_max'] = epochs
    cfg.train_cfg.val_interval = cfg.train_cfg.max_epochs + 1  # tested once below
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        interval=cfg.train_cfg.max_epochs)
    runner = Runner.from_cfg(cfg)
    t0 = time.time()
    runner.train()
    seconds = time.time() - t0
    metrics = runner.test()
    ckpt = osp.join(work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')
    return dict(metrics=metrics, checkpoint=ckpt, train_seconds=seconds)
