"""The public API the tools call: build a detector and load weights, count joint FLOPs,
prune, fine-tune and test, export a slim model, load configs."""
from .config_utils import (
                           add_runner_args,
                           config_from_args,
                           load_config,
                           parse_runner_args,
                           set_data_root,
)
from .demo import evaluate_checkpoint, evaluate_model
from .finetune import finetune_and_test
from .flops import count_on_dataset, count_on_points
from .model import build_detector, default_device, load_weights, resolve_device
from .prune import save_result, write_pruned_config, write_reports
from .slim import export_slim

__all__ = ['add_runner_args', 'build_detector', 'config_from_args', 'count_on_dataset',
           'count_on_points', 'default_device', 'evaluate_checkpoint', 'evaluate_model',
           'export_slim', 'finetune_and_test', 'load_config', 'load_weights',
           'parse_runner_args', 'resolve_device', 'save_result', 'set_data_root',
           'write_pruned_config', 'write_reports']
