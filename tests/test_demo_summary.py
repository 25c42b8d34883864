"""The main demo's summary (``tools/demo.py``): every row a real cell (dense, DM3D alone,
the spatial model, hand-set and joint at the same budget) pruned, counted, evaluated and
timed side by side; the table holds them and the plot is written; a shipped fine-tuned
checkpoint of the joint cell is evaluated as the joint row's fine-tuned figure."""
import os.path as osp

from conftest import NO_WORKERS, REPO


def test_summary_rows_are_the_cells_measured_side_by_side(tiny_root, tmp_path):
    from dm3d_mm.studies.demo_summary import (
        DemoDetector,
        plot_summary,
        run_detector,
        summary_table,
    )
    joint_ckpt = osp.join(tmp_path, 'summary', 'second', 'second_ada3d+joint10', 'pruned.pth')
    spec = DemoDetector('second', 'SECOND', budget=0.1, dm3d_budget=0.5, spatial=('ada3d', ),
                        joint_on='ada3d', spatial_grid=dict(grid=(1.0, 0.5)), calib_frames=2,
                        finetuned=joint_ckpt)
    rows = run_detector(spec, tiny_root, str(tmp_path / 'summary'), frames=1, repeats=1,
                        log=lambda line: None, checkpoint_root=REPO, cfg_options=NO_WORKERS,
                        flops_frames=1)
    kinds = [r['kind'] for r in rows]
    assert kinds == ['dense', 'weight', 'spatial', 'spatial + weight', 'joint']
    by_kind = dict(zip(kinds, rows))
    assert by_kind['dense']['wall'] == 1.0 and by_kind['dense']['flops_ratio'] == 1.0
    assert all(r['wall'] > 0 for r in rows)
    # DM3D alone at its own budget; hand-set and joint at the same joint FLOPs
    assert abs(by_kind['weight']['flops_ratio'] - 0.5) < 0.05
    hand, joint = by_kind['spatial + weight'], by_kind['joint']
    assert joint['flops_ratio'] < 0.12 and abs(hand['flops_ratio'] - joint['flops_ratio']) < 0.02
    assert joint['joint_choice']['keep_ratios']
    # the stand-in "fine-tuned" checkpoint is the joint cell's own: the same mAP again
    assert osp.isfile(joint_ckpt) and joint['mAP_ft'] == joint['mAP']
    table = summary_table({'SECOND': rows})
    assert len(table.splitlines()) == 2 + len(rows) and '**joint**' in table
    png = plot_summary({'SECOND': rows}, str(tmp_path / 'summary.png'))
    assert osp.getsize(png) > 10000
