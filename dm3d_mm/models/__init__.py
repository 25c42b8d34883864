"""mmdet3d model pieces the demo detectors need (registered in mmdet3d's MODELS)."""
from .static_center_head import StaticCenterHead

__all__ = ['StaticCenterHead']
