"""Entry points used by tools/: config loading and (later) prune / flops / ablate."""
from .config_utils import load_config, set_data_root

__all__ = ['load_config', 'set_data_root']
