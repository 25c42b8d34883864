"""tools/ablate.py machinery on a few frames: every kind of cell runs, a fine-tuned weight
cell keeps its masks, tables and plot come out, and a re-run skips finished cells."""
import json
import os.path as osp

import pytest
import torch

from conftest import REPO

DENSE = osp.join(REPO, 'checkpoints/second_synth-kitti_cpu.pth')


def test_ablation_cells_tables_and_resume(synth_root, tmp_path):
    from dm3d_mm.apis.ablate import Ablation, Cell, plan
    from dm3d_mm.apis.ablate_report import (plot_ap_vs_flops, table_estimators, table_parts,
                                            table_spatial_weight)
    options = dict(train_dataloader=dict(num_workers=0, persistent_workers=False),
                   val_dataloader=dict(num_workers=0, persistent_workers=False),
                   test_dataloader=dict(num_workers=0, persistent_workers=False))
    abl = Ablation(str(tmp_path), synth_root, epochs=0, calib_frames=2, flops_frames=2,
                   dense_ckpt=DENSE, cfg_options=options)
    cells = plan([0.5])
    assert [c.kind for c in cells] == ['dense', 'spatial', 'weight', 'spatial + weight']
    rows = {c.name: abl.run(c) for c in cells}
    assert rows['dense']['flops_ratio'] == pytest.approx(1.0)
    assert rows['spss50']['flops_ratio'] < 1.0
    assert rows['dm3d50-all-fisher']['flops_ratio'] == pytest.approx(0.5, abs=0.03)
    # the weight budget is counted on the spatially pruned model
    both = rows['spss50+dm3d50-all-fisher']['flops_ratio']
    assert both == pytest.approx(0.5 * rows['spss50']['flops_ratio'], rel=0.1)
    md = table_spatial_weight(abl.results)
    assert md.count('\n') == 5 and '| spatial + weight | 0.50 |' in md
    assert table_parts(abl.results) == '' and table_estimators(abl.results) == ''
    assert osp.isfile(plot_ap_vs_flops(abl.results, str(tmp_path / 'fig.png')))

    # a fine-tuned weight cell: the hook restores the masks and keeps them through training
    abl.epochs = 1
    cell = Cell(budget=0.5, parts='2D')
    row = abl.run(cell)
    ckpt = torch.load(osp.join(tmp_path, cell.name, 'finetune', 'epoch_1.pth'),
                      map_location='cpu', weights_only=False)
    masks = ckpt['meta']['dm3d']['masks']
    assert masks and all(n.startswith(('backbone', 'neck')) for n in masks)
    sd = ckpt['state_dict']
    assert all(not sd[n + '.weight'][~m].any() for n, m in masks.items())
    assert row['epochs'] == 1

    # a re-run reads the JSON and skips every finished cell
    before = json.load(open(abl.path))
    again = Ablation(str(tmp_path), synth_root, epochs=1, dense_ckpt=DENSE,
                     cfg_options=options)
    logs = []
    for c in cells + [cell]:
        again.run(c, log=logs.append)
    assert all('skipped' in line for line in logs) and len(logs) == 5
    assert json.load(open(again.path)) == before
