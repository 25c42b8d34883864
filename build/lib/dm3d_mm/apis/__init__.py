"""Entry points used by tools/: config loading and (later) prune / flops / ablate."""
from .config_utils import (add_runner_args, config_from_args, load_config,
                           parse_runner_args, set_data_root)

__all__ = ['add_runner_args', 'config_from_args', 'load_config', 'parse_runner_args',
           'set_data_root']
