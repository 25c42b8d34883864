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


def test_sparse_head_config_skips_the_ada3d_centerpoints_background(synth_root):
    """The shipped Ada3D CenterPoint under centerpoint_synth-kitti_cpu_ada3d_sparse-head.py
    and under its DM3D config (_sparse-head_dm3d50.py, the ablation's model of that spatial
    setup; the same checkpoint): the neck attaches a BEV support, the CenterHead's shared conv
    multiplies only the pixels its windows reach (fewer than the map), and every head output
    equals the Ada3D config's at every pixel; the joint FLOPs counted drop by exactly the
    shared conv's (and the neck's unstrided conv's) skipped pixels."""
    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.cost import FlopsCounter
    from dm3d_mm.pruning.calib_frames import calibration_batches
    ckpt = osp.join(REPO, 'checkpoints/centerpoint_synth-kitti_cpu_ada3d.pth')
    models, outs, counts = {}, {}, {}
    sparse_configs = ('ada3d_sparse-head', 'ada3d_sparse-head_dm3d50')
    for name in ('ada3d', ) + sparse_configs:
        cfg = load_config(osp.join(REPO, f'configs/demo/centerpoint_synth-kitti_cpu_{name}.py'),
                          data_root=synth_root)
        models[name] = m = build_detector(cfg, ckpt, 'cpu').eval()
        batch = calibration_batches(cfg, 1, 'val')[0]
        with FlopsCounter(m) as counts[name], torch.no_grad():
            data = m.data_preprocessor(batch, False)['inputs']
            feats = m.extract_pts_feat(data['voxels'], points=data.get('points'),
                                       img_feats=None, batch_input_metas=None)
            outs[name] = (feats[0].bev_support if hasattr(feats[0], 'bev_support') else None,
                          m.pts_bbox_head(feats))
    shared = 'pts_bbox_head.shared_conv.conv'
    a = counts['ada3d'].layers
    for name in sparse_configs:
        support, sparse = outs[name]
        assert outs['ada3d'][0] is None and support is not None
        for task_a, task_b in zip(outs['ada3d'][1][0], sparse[0]):
            for key in task_a:
                assert torch.allclose(task_a[key], task_b[key], atol=1e-4), (name, key)
        b = counts[name].layers
        hw = support.active.numel()
        assert a[shared].pairs.tolist() == [hw] * 9
        assert 0 < b[shared].pairs[0] < hw and b[shared].spatial_saving == 'skipped'
        skipped = sum(a[n].ops() - b[n].ops() for n in a)
        assert skipped > 0 and set(n for n in a if a[n].ops() != b[n].ops()) == {
            shared, 'pts_neck.deblocks.0.0'}


# mAP (moderate 3D AP40, Car / Pedestrian / Cyclist) of the shipped Ada3D CenterPoints on the
# tests' 8 val frames (the benchmark's first 8; configs/demo/README.md has all 100)
ADA3D_MAP8 = {'centerpoint_synth-kitti_cpu_ada3d': 52.7,
              'centerpoint_synth-kitti_cpu_ada3d-kd': 57.1}


def test_shipped_distilled_ada3d_centerpoint(synth_root, tmp_path):
    """The demo's CenterPoint spatial checkpoint (Ada3D trained with a dense teacher) holds
    the student's keys only, loads strictly into the plain mmdet3d model of the Ada3D config,
    and scores within 3 mAP of its measured value on the 8 val frames, as the Ada3D model
    trained without a teacher does of its own."""
    from mmdet3d.registry import MODELS
    from mmengine.registry import init_default_scope

    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.demo import evaluate_checkpoint
    from dm3d_mm.apis.kitti_summary import moderate_map, summarize_kitti_metrics
    config = osp.join(REPO, 'configs/demo/centerpoint_synth-kitti_cpu_ada3d_sparse-head.py')
    state = torch.load(osp.join(REPO, 'checkpoints/centerpoint_synth-kitti_cpu_ada3d-kd.pth'),
                       map_location='cpu', weights_only=False)['state_dict']
    init_default_scope('mmdet3d')
    plain = MODELS.build(load_config(osp.join(
        REPO, 'configs/demo/centerpoint_synth-kitti_cpu_ada3d.py')).model)
    assert set(state) == set(plain.state_dict())
    plain.load_state_dict(state, strict=True)
    for name, measured in ADA3D_MAP8.items():
        ap = summarize_kitti_metrics(evaluate_checkpoint(
            config, osp.join(REPO, f'checkpoints/{name}.pth'), synth_root,
            str(tmp_path / name)))
        assert moderate_map(ap) > measured - 3, (name, ap)
