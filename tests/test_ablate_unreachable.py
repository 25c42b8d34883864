"""Ablation cells whose budget the prunable layers cannot reach: recorded and skipped, and
the part set that reaches it (the anchor head's convs on Ada3D)."""
import pytest
from conftest import NO_WORKERS, REPO

OPTIONS = NO_WORKERS


def test_unreachable_cells_are_recorded_and_skipped(tiny_root, tmp_path):
    """A budget below the floor of the prunable layers is recorded, not fatal: the study
    goes on, the JSON keeps the reason, a re-run skips the cell. On Ada3D the layers 'all'
    leaves unpruned (the anchor head's convs, computed at the active pixels, the predictor,
    the voxel encoder) are over a tenth of its joint FLOPs: 0.1 of them is out of reach
    without the head's convs ('all') and reached with them ('all+head')."""
    from dm3d_mm.studies.ablation import Ablation, Cell
    abl = Ablation(str(tmp_path), tiny_root, epochs=0, calib_frames=2, flops_frames=2,
                   checkpoint_root=REPO, cfg_options=OPTIONS)
    cell = Cell(spatial='ada3d', budget=0.1)
    assert abl.run(cell) is None
    assert 'floor' in abl.unreachable[cell.name]
    again = Ablation(str(tmp_path), tiny_root, epochs=0, checkpoint_root=REPO,
                     cfg_options=OPTIONS)
    logs = []
    assert again.run(cell, log=logs.append) is None and 'unreachable before' in logs[0]
    with_head = Cell(spatial='ada3d', budget=0.1, parts='all+head')
    assert with_head.name == 'second:ada3d+dm3d10-all+head'
    row = again.run(with_head)
    assert any(a['name'].startswith('bbox_head.conv_') and a['pruned'] > 0
               for a in row['allocation'])
    ada = again.run(Cell(spatial='ada3d'))
    # the budget is met on the calibration (train) frames and the ratio counted on the val
    # frames: Ada3D's as-computed head cost follows each frame's active pixels
    assert row['flops_ratio'] == pytest.approx(0.1 * ada['flops_ratio'], rel=0.1)
