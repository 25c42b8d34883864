"""The compatibility fixes for the pinned stack, checked against the code they replace."""
import os
import subprocess
import sys

import numpy as np
import torch

import dm3d_mm  # noqa: F401

REF = r'''
import os, sys
os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # run mmdet3d's CUDA kernel in numba's simulator
import numpy as np
from mmdet3d.evaluation.functional.kitti_utils.rotate_iou import rotate_iou_gpu_eval
b = np.load(sys.argv[1]); q = np.load(sys.argv[2])
np.save(sys.argv[3], np.stack([rotate_iou_gpu_eval(b, q, c) for c in (-1, 0, 1, 2)]))
'''


def test_cpu_rotated_iou_equals_mmdet3d_cuda_kernel(tmp_path):
    from dm3d_mm.compat import rotate_iou_cpu_eval
    rng = np.random.default_rng(0)

    def boxes(n):
        return np.concatenate([rng.uniform(0, 6, (n, 2)), rng.uniform(0.5, 4, (n, 2)),
                               rng.uniform(-3.2, 3.2, (n, 1))], 1).astype(np.float32)
    b, q = boxes(9), boxes(7)
    np.save(tmp_path / 'b.npy', b)
    np.save(tmp_path / 'q.npy', q)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM='1')
    subprocess.run([sys.executable, '-c', REF, str(tmp_path / 'b.npy'), str(tmp_path / 'q.npy'),
                    str(tmp_path / 'ref.npy')], check=True, env=env, capture_output=True)
    ref = np.load(tmp_path / 'ref.npy')
    got = np.stack([rotate_iou_cpu_eval(b, q, c) for c in (-1, 0, 1, 2)])
    assert ref.max() > 0.3  # the boxes do overlap
    assert np.allclose(got, ref, atol=1e-5)
    assert rotate_iou_cpu_eval(b[:0], q).shape == (0, 7)


def test_gt_database_sampler_runs_and_pastes_objects(synth_root):
    """mmdet3d's DataBaseSampler (ObjectSample) on the pinned numpy: it pastes database
    objects into the frame (their points and boxes), which needs the np.long alias."""
    from conftest import demo_config
    from mmdet3d.registry import TRANSFORMS
    from mmengine.dataset import Compose
    cfg = demo_config('second', synth_root)
    load, annots, sample = cfg.train_pipeline[:3]
    assert sample['type'] == 'ObjectSample'
    from mmdet3d.registry import DATASETS
    ds = DATASETS.build(dict(cfg.train_dataloader.dataset.dataset, pipeline=[]))
    plain = Compose([TRANSFORMS.build(load), TRANSFORMS.build(annots)])
    sampler = TRANSFORMS.build(sample)
    frame = plain(ds.get_data_info(0))
    # a frame without objects: the sampler fills every class up to its sample group
    frame['gt_bboxes_3d'] = frame['gt_bboxes_3d'][[]]
    frame['gt_labels_3d'] = frame['gt_labels_3d'][:0]
    n_points = len(frame['points'])
    out = sampler(frame)
    assert len(out['gt_bboxes_3d']) > 0
    assert len(out['points']) > n_points  # the pasted objects bring their points
    assert len(out['gt_labels_3d']) == len(out['gt_bboxes_3d'])
    assert out['gt_labels_3d'].dtype == np.int64


def test_runner_checkpoints_load_under_safe_torch_load(tmp_path):
    from mmengine.logging import HistoryBuffer
    from mmengine.runner import load_checkpoint
    model = torch.nn.Linear(3, 2)
    path = tmp_path / 'ckpt.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(hub=HistoryBuffer([1.0, 2.0], [1, 1]), arr=np.arange(3))), path)
    other = torch.nn.Linear(3, 2)
    ckpt = load_checkpoint(other, str(path), map_location='cpu')
    assert torch.equal(other.weight, model.weight)
    assert ckpt['meta']['arr'].tolist() == [0, 1, 2]
