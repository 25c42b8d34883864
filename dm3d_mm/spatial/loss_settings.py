"""Settings of the auxiliary losses the spatial detectors add (Ada3D's importance MSE, the
SPSS foreground BCE): defaults filled in, the keys that place targets on the grid taken from
the detector's voxel layer unless the config gives them."""
from typing import Optional, Sequence

from torch import nn

from ..errors import MissingKey

GRID_KEYS = ('point_cloud_range', 'voxel_size')


def loss_settings(name: str, given: dict, defaults: dict,
                  voxel_layer: Optional[nn.Module] = None,
                  required: Sequence[str] = GRID_KEYS) -> dict:
    """``defaults``, then the ``required`` grid keys the detector's ``voxel_layer`` holds
    (mmcv's / mmdet3d's voxel layers and SortVoxelization keep ``point_cloud_range`` and
    ``voxel_size``), then ``given``; a KeyError naming ``name`` and the first required key
    still missing."""
    cfg = dict(defaults)
    for key in required:
        if getattr(voxel_layer, key, None) is not None:
            cfg[key] = [float(v) for v in getattr(voxel_layer, key)]
    cfg.update(given or {})
    for key in required:
        if key not in cfg:
            raise MissingKey(f'{name} needs {key!r} (give it, or voxelize in the data '
                           'preprocessor: its voxel_layer supplies it)')
    return cfg


def detector_voxel_layer(detector: nn.Module) -> Optional[nn.Module]:
    """The voxel layer of ``detector``'s data preprocessor, or None."""
    return getattr(getattr(detector, 'data_preprocessor', None), 'voxel_layer', None)
