"""Settings of the auxiliary losses the spatial detectors add (Ada3D's importance MSE, the
SPSS foreground BCE): defaults filled in, the keys that place targets on the grid required."""
from typing import Sequence


def loss_settings(name: str, given: dict, defaults: dict,
                  required: Sequence[str] = ('point_cloud_range', 'voxel_size')) -> dict:
    """``defaults`` updated by ``given``; a KeyError naming ``name`` and the first missing
    required key (the voxel layer's range and voxel size place the loss's targets)."""
    cfg = dict(defaults)
    cfg.update(given)
    for key in required:
        if key not in cfg:
            raise KeyError(f'{name} needs {key!r}')
    return cfg
