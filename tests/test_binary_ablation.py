"""The binarised-PointPillars ablation on a few frames: rows fine-tune and report AP, BOPs
and storage; the packed export is smaller, loads through mmengine's loader and predicts what
the float checkpoint predicts; a re-run skips finished rows; tool errors are one line."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import NO_WORKERS, REPO

OPTIONS = NO_WORKERS


def test_rows_report_and_resume(tiny_root, tmp_path):
    from mmengine.runner import load_checkpoint

    from dm3d_mm.apis.config_utils import load_config
    from dm3d_mm.apis.flops import single_frame_loader
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.studies.binary_ablation import ROWS, BinaryAblation, table
    abl = BinaryAblation(str(tmp_path), tiny_root, epochs=1, flops_frames=2,
                         cfg_options=OPTIONS)
    results = abl.run(['fp', 'ema_lsr'])
    fp, bi = results['fp'], results['ema_lsr']
    # full precision: nothing binarised, no binary ops; binarised: the second PFN layer
    # takes signs (BOPs), the first keeps float inputs with sign weights
    assert fp['bops'] == 0 and fp['binary_weight_bytes_packed'] == 0
    assert bi['bops'] > 0 and bi['encoder_macs'] < fp['encoder_macs']
    # same pillars in both: the binary layer's MACs became BOPs, counted as BOPs / 64
    assert bi['encoder_macs'] + bi['bops'] * 63 / 64 == pytest.approx(fp['encoder_macs'])
    assert bi['binary_weight_bytes_fp32'] >= 31 * bi['binary_weight_bytes_packed']
    assert bi['packed_checkpoint_bytes'] < bi['checkpoint_bytes_fp32']
    for r in (fp, bi):
        assert set(r['ap_3d']) == {'Car', 'Pedestrian', 'Cyclist'}
    md = table(results)
    lines = [ln for ln in md.splitlines() if ln.startswith('|')]
    assert len(lines) == 4 and all(ln.count('|') == lines[0].count('|') for ln in lines)
    assert lines[2].startswith('| full precision') and lines[3].startswith('| + EMA + LSR')
    # the packed export loads through mmengine's own loader and predicts the same boxes
    cfg = load_config(ROWS['ema_lsr'][1], cfg_options=OPTIONS, data_root=tiny_root)
    ref = build_detector(cfg, bi['checkpoint'], device='cpu')
    packed = build_detector(cfg, None, device='cpu')
    load_checkpoint(packed, bi['packed_checkpoint'], map_location='cpu', strict=True)
    packed.eval()
    batch = next(iter(single_frame_loader(cfg)))
    with torch.no_grad():
        a = ref.test_step(batch)[0].pred_instances_3d
        b = packed.test_step(batch)[0].pred_instances_3d
    assert torch.allclose(a.scores_3d, b.scores_3d, atol=1e-5)
    assert torch.allclose(a.bboxes_3d.tensor, b.bboxes_3d.tensor, atol=1e-4)
    # a re-run keeps the finished rows as they are
    again = BinaryAblation(str(tmp_path), tiny_root, epochs=1, cfg_options=OPTIONS)
    assert again.run(['fp'])['fp'] == fp
    with pytest.raises(ValueError, match='unknown rows'):
        again.run(['xnor'])


def test_export_tool_errors_are_one_line(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, osp.join(REPO, 'tools', 'export_binary.py'),
                               *args], capture_output=True, text=True, cwd=REPO)
    ckpt = 'checkpoints/pointpillars_synth-kitti_cpu.pth'
    for args, words in (
            (['configs/demo/pointpillars_synth-kitti_cpu.py', ckpt, '--out',
              str(tmp_path / 'p.pth')], 'no enabled binarised layer'),
            (['configs/demo/pointpillars_synth-kitti_cpu_bipfn.py', ckpt, '--out', ckpt],
             'would overwrite')):
        proc = run(*args)
        assert proc.returncode == 2, proc.stderr[-2000:]
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('error: ')]
        assert len(errors) == 1 and words in errors[0] and 'Traceback' not in proc.stderr
    assert not (tmp_path / 'p.pth').exists()
