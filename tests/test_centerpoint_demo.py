"""CenterPoint end to end on CPU: tools/prune.py prunes the demo CenterPoint (CenterHead
heatmaps as y), tools/train.py fine-tunes it with DM3DPruningHook keeping the masks."""
import os.path as osp
import subprocess
import sys

import torch

from conftest import REPO

CONFIG = 'configs/demo/centerpoint_synth-kitti_cpu_dm3d25.py'


def test_prune_then_finetune_centerpoint(synth_root, tmp_path):
    from mmengine.runner.checkpoint import save_checkpoint

    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.model import build_detector
    cfg = load_config(osp.join(REPO, CONFIG), data_root=synth_root)
    torch.manual_seed(0)
    dense = tmp_path / 'dense.pth'
    save_checkpoint(dict(state_dict=build_detector(cfg, None, 'cpu').state_dict(),
                         meta=dict(dataset_meta=dict(classes=list(cfg.class_names)))),
                    str(dense))
    prune = subprocess.run(
        [sys.executable, 'tools/prune.py', CONFIG, '--checkpoint', str(dense),
         '--data-root', synth_root, '--calib-frames', '2', '--num-ratios', '4',
         '--flops-target', '0.5', '--work-dir', str(tmp_path / 'p')],
        capture_output=True, text=True, cwd=REPO)
    assert prune.returncode == 0, prune.stderr[-3000:]
    pruned = tmp_path / 'p' / 'pruned.pth'
    meta = torch.load(pruned, map_location='cpu', weights_only=False)['meta']['dm3d']
    assert meta['achieved_ratio'] <= 0.5 + 1e-9 and meta['head_outputs'].startswith(
        'CenterHeadOutputs')
    masks = meta['masks']
    assert any(n.startswith('pts_middle_encoder') for n in masks)
    train = subprocess.run(
        [sys.executable, 'tools/train.py', CONFIG, '--data-root', synth_root,
         '--work-dir', str(tmp_path / 'ft'), '--cfg-options', f'load_from={pruned}',
         'train_cfg.max_epochs=1', 'train_dataloader.batch_size=3',
         'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
         'train_cfg.val_interval=10', 'default_hooks.checkpoint.interval=1'],
        capture_output=True, text=True, cwd=REPO)
    assert train.returncode == 0, train.stderr[-3000:]
    out = torch.load(tmp_path / 'ft' / 'epoch_1.pth', map_location='cpu', weights_only=False)
    state = out['state_dict']
    for name, mask in masks.items():
        assert not state[name + '.weight'][~mask].any()  # the masks survived the steps
    assert set(out['meta']['dm3d']['masks']) == set(masks)
