"""The embedded synthetic LiDAR benchmark (KITTI layout)."""
from .synthetic_kitti import SyntheticKittiConfig, generate, generate_frame

__all__ = ['SyntheticKittiConfig', 'generate', 'generate_frame']
