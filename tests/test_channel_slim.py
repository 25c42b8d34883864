"""Channel granularity and the slim export: a channel's removal is a group in the DM3D
pipeline (distortion = the quadratic form on the removed block), the DP meets the budget
counted exactly (consumers' input slices included) with tied stage widths, masks (norm
affine included) survive optimizer steps, the slim model's outputs equal the masked
model's, and the slim checkpoint loads strictly into plain mmdet3d with its generated
config."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import REPO, demo_config
from torch import nn

import dm3d_mm  # noqa: F401
from dm3d_mm.structured.granularity import build_granularity
from dm3d_mm.weight import distortion_curve
from dm3d_mm.weight.curves import taylor_scores

SECOND_CKPT = osp.join(REPO, 'checkpoints/second_synth-kitti_cpu.pth')


@pytest.mark.parametrize('layer', [nn.Conv2d(3, 4, 3), nn.ConvTranspose2d(3, 5, 2, stride=2)])
def test_channel_groups_and_their_distortion_equal_the_quadratic_form(layer):
    g = torch.Generator().manual_seed(0)
    d = layer.weight.numel()
    layer.weight.data.copy_(torch.randn(layer.weight.shape, generator=g))
    grads = torch.randn(6, d, generator=g)
    gran = build_granularity('channel')
    order, counts = gran.order_and_counts(layer, taylor_scores(layer.weight, grads), 4)
    axis = 1 if isinstance(layer, nn.ConvTranspose2d) else 0
    channels = layer.weight.shape[axis]
    ids = torch.arange(layer.weight.numel()).reshape(layer.weight.shape)
    for n in counts.tolist():  # every candidate removes whole output channels
        removed = torch.zeros(layer.weight.numel(), dtype=torch.bool)
        removed[order[:n]] = True
        per_channel = removed[ids].movedim(axis, 0).reshape(channels, -1)
        assert bool((per_channel.all(1) | ~per_channel.any(1)).all())
    c = distortion_curve(layer.weight, grads, 4, 'fisher', 0.0, order=order, counts=counts)
    F = grads.double().T @ grads.double() / 6
    flat = layer.weight.detach().reshape(-1).double()
    for k, n in enumerate(counts.tolist()):
        dw = torch.zeros(d, dtype=torch.float64)
        dw[order[:n]] = -flat[order[:n]]
        assert float(c.distortion[k]) == pytest.approx(float(dw @ F @ dw), rel=1e-9,
                                                       abs=1e-12)
    with pytest.raises(ValueError, match='needs a dense conv'):
        gran.groups(nn.Linear(3, 4))


@pytest.fixture(scope='module')
def pruned_second(synth_root):
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.apis.prune import calibration_batches
    from dm3d_mm.pruning import DM3DPruner
    cfg = demo_config('second', synth_root)
    batches = calibration_batches(cfg, frames=2, split='train')
    model = build_detector(cfg, SECOND_CKPT, device='cpu')
    pruner = DM3DPruner(0.5, num_ratios=8, parts=['middle_encoder', 'backbone', 'neck'],
                        granularity='channel', progress=False)
    return cfg, batches, model, pruner, pruner.prune(model, batches)


def test_channel_pruning_meets_the_budget_exactly_with_tied_stage_widths(pruned_second):
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.cost.layouts import in_channel_axis, out_channel_axis
    from dm3d_mm.structured.channel_graph import find_channel_graph
    cfg, batches, model, pruner, res = pruned_second
    # the exact cost (input slices of removed channels included) is within the budget,
    # and the bisection spends it: not far below
    assert 0.4 * res.macs_before < res.macs_after <= 0.5 * res.macs_before
    cm = pruner.cost_model(model, batches, [lr.name for lr in res.layers])
    assert cm.total() == pytest.approx(res.macs_after, rel=1e-9)
    modules = dict(model.named_modules())
    dense = build_detector(cfg, SECOND_CKPT, device='cpu')
    removed_any = False
    for group in find_channel_graph(model).groups(model):
        kept = []
        for pr in group.producers:
            w = modules[pr.layer].weight
            axis = out_channel_axis(modules[pr.layer])
            zero = (w == 0).movedim(axis, 0).reshape(w.shape[axis], -1).all(1)
            norm = modules[pr.norm]
            # a removed channel: weights, norm weight and bias all zero (exactly zero out)
            assert torch.equal(zero, norm.weight == 0) and torch.equal(zero, norm.bias == 0)
            kept.append(int((~zero).sum()))
            removed_any |= bool(zero.any())
            # consumers' input slices of removed channels are masked; the rest untouched
            for consumer, (offset, per) in pr.consumers.items():
                cw = modules[consumer].weight
                caxis = in_channel_axis(modules[consumer])
                dead = zero.repeat_interleave(per)
                sl = cw.narrow(caxis, offset, len(dead)).movedim(caxis, 0)[dead]
                assert bool((sl == 0).all())
        assert len(set(kept)) == 1, (group.key, kept)  # one width per config entry
    assert removed_any
    # the 3D encoder's groups are there, each sparse conv its own width
    keys = [g.key for g in find_channel_graph(model).groups(model)]
    assert 'middle_encoder.output_channels' in keys and 'backbone.out_channels.0' in keys
    # layers outside the pruned parts are untouched, the head's input convs aside
    dense_sd = dense.state_dict()
    for k, v in model.state_dict().items():
        if not k.startswith(('middle_encoder', 'backbone', 'neck', 'bbox_head.conv_')):
            assert torch.equal(v, dense_sd[k]), k


def test_channel_masks_survive_optimizer_steps(pruned_second):
    import copy

    from dm3d_mm.weight import MaskSet
    cfg, batches, model, pruner, res = pruned_second
    model = copy.deepcopy(model)
    norm_keys = [k for k in res.masks if k.endswith(('.bias', '.weight')) and
                 k.rsplit('.', 1)[0] not in [lr.name for lr in res.layers]]
    assert norm_keys  # the norm affine of removed channels is masked too
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=0.1, weight_decay=0.1)
    masks = MaskSet(model, res.masks).attach(opt)
    model.train()
    for _ in range(3):
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
    named = dict(model.named_parameters())
    for k, m in res.masks.items():
        target = named.get(k, named.get(k + '.weight'))
        assert bool((target.detach()[~m.to(target.device)] == 0).all()), k
    masks.detach()


def test_slim_model_equals_the_masked_model_and_loads_in_plain_mmdet3d(pruned_second,
                                                                       tmp_path):
    from dm3d_mm.apis.slim import export_slim
    from dm3d_mm.pruning.checkpoint import save_pruned_checkpoint
    cfg, batches, model, pruner, res = pruned_second
    pruned = str(tmp_path / 'pruned.pth')
    save_pruned_checkpoint(pruned, model, res.masks, res.info(), source=SECOND_CKPT)
    out = export_slim(cfg, pruned, str(tmp_path), 'slim')
    assert any(out['widths'][k] < out['widths_before'][k] for k in out['widths'])
    assert osp.getsize(out['checkpoint']) < osp.getsize(SECOND_CKPT)
    from mmengine.config import Config
    written = Config.fromfile(out['config'])
    assert written.model.train_cfg is not None  # it trains with tools/train.py
    assert written.load_from == out['checkpoint'] and 'pruning' not in written
    # plain mmdet3d, in a fresh process without dm3d_mm: build both models from their
    # configs, load the masked and the slim weights strictly, and save the head's raw
    # outputs on one frame (before NMS, which can flip near-equal boxes on float noise)
    frame, source_cfg = str(tmp_path / 'frame.pt'), str(tmp_path / 'source.py')
    torch.save(batches[0], frame)
    cfg.dump(source_cfg)
    script = (
        'import sys, torch\n'
        'from mmengine.config import Config\n'
        'from mmengine.runner import load_checkpoint\n'
        'from mmdet3d.registry import MODELS\n'
        'from mmdet3d.utils import register_all_modules\n'
        'register_all_modules()\n'
        # plain spconv's multi-threaded CPU conv is not exact (see dm3d_mm/compat)
        'torch.set_num_threads(1)\n'
        'batch = torch.load(sys.argv[5], weights_only=False)\n'
        'outs = []\n'
        'for config, ckpt in ((sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4])):\n'
        '    cfg = Config.fromfile(config, import_custom_modules=False)\n'
        '    model = MODELS.build(cfg.model).eval()\n'
        '    load_checkpoint(model, ckpt, map_location="cpu", strict=True)\n'
        '    with torch.no_grad():\n'
        '        data = model.data_preprocessor(batch, False)\n'
        '        outs.append(model.bbox_head(model.extract_feat(data["inputs"])))\n'
        'assert "dm3d_mm" not in sys.modules\n'
        'torch.save(outs, sys.argv[6])\n')
    result = str(tmp_path / 'plain.pt')
    proc = subprocess.run([sys.executable, '-c', script, source_cfg, pruned, out['config'],
                           out['checkpoint'], frame, result], capture_output=True, text=True,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    masked, slimmed = ([t for level in outs for t in level] for outs in torch.load(result))
    assert len(masked) == len(slimmed) == 3  # class, box and direction maps
    for a, b in zip(masked, slimmed):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-4, rtol=1e-5)


def test_slim_errors(synth_root, tmp_path):
    from dm3d_mm.apis.slim import export_slim
    from dm3d_mm.pruning import DM3DPruner
    cfg = demo_config('second', synth_root)
    with pytest.raises(ValueError, match='no removable channel'):
        export_slim(cfg, SECOND_CKPT, str(tmp_path), 'slim')
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.structured.channel_graph import find_channel_graph
    model = build_detector(cfg, None, 'cpu')
    groups = find_channel_graph(model).groups(model)
    with pytest.raises(ValueError, match='ties'):
        DM3DPruner(0.5, granularity={'backbone.blocks.0.0': 'channel'}).builder._items(
            ['backbone.blocks.0.0', 'backbone.blocks.0.3'], groups)


def test_centerpoint_channel_pruning_slims_through_pts_parts_and_the_head(synth_root):
    from mmdet3d.registry import MODELS

    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.apis.prune import calibration_batches
    from dm3d_mm.pruning import DM3DPruner
    from dm3d_mm.structured.slim import slim
    cfg = load_config(osp.join(REPO, 'configs/demo/centerpoint_synth-kitti_cpu.py'),
                      data_root=synth_root)
    model = build_detector(cfg, osp.join(REPO, 'checkpoints/centerpoint_synth-kitti_cpu.pth'),
                           device='cpu')
    batches = calibration_batches(cfg, frames=2, split='train')
    res = DM3DPruner(0.5, num_ratios=8, lambdas=(1.0, 1.0), granularity='channel',
                     parts=['pts_middle_encoder', 'pts_backbone', 'pts_neck', 'pts_bbox_head'],
                     progress=False).prune(model, batches)
    assert res.macs_after <= 0.5 * res.macs_before
    new_cfg, state, widths = slim(cfg, model)
    assert all(k.startswith('pts_') for k in widths)
    # the CenterHead's shared conv and its branches' inner convs (one width) are groups too
    assert {'pts_bbox_head.share_conv_channel', 'pts_bbox_head.separate_head.head_conv'} <= set(
        widths)
    assert new_cfg.model.pts_bbox_head.separate_head.head_conv == widths[
        'pts_bbox_head.separate_head.head_conv']
    assert new_cfg.model.pts_bbox_head.in_channels == sum(new_cfg.model.pts_neck.out_channels)
    slimmed = MODELS.build(new_cfg.model).eval()
    slimmed.load_state_dict(state, strict=True)
    model.eval()

    def heads(m):
        data = m.data_preprocessor(batches[0], False)['inputs']
        feats = m.extract_pts_feat(data['voxels'], points=data.get('points'), img_feats=None,
                                   batch_input_metas=None)
        return m.pts_bbox_head(feats)[0][0]  # the first task's output maps
    with torch.no_grad():
        ref, out = heads(model), heads(slimmed)
    for key in ref:
        assert torch.allclose(ref[key], out[key], atol=1e-4, rtol=1e-5), key


def test_round_to_keeps_multiples_of_n_channels(synth_root):
    """Every candidate of ChannelGranularity(round_to=8) keeps a multiple of 8 channels (or
    all of them), and a pruned SECOND's slim widths are such multiples, budget met."""
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.apis.prune import calibration_batches
    from dm3d_mm.pruning import DM3DPruner
    from dm3d_mm.structured.slim import slim
    gran = build_granularity(dict(type='channel', round_to=8))
    for width in (8, 12, 64, 100):
        kept = width - gran.candidate_groups(width, 16)
        assert kept[0] == width and bool(((kept % 8 == 0) | (kept == width)).all())
        assert kept.min() == 0 and bool((kept[1:] <= kept[:-1]).all())
    with pytest.raises(ValueError, match='round_to'):
        build_granularity(dict(type='channel', round_to=0))
    cfg = demo_config('second', synth_root)
    model = build_detector(cfg, SECOND_CKPT, device='cpu')
    batches = calibration_batches(cfg, frames=2, split='train')
    res = DM3DPruner(0.4, num_ratios=8, parts=['backbone', 'neck'], progress=False,
                     granularity=dict(type='channel', round_to=8)).prune(model, batches)
    assert res.macs_after <= 0.4 * res.macs_before
    widths = slim(cfg, model)[2]
    assert widths and all(w % 8 == 0 or w == 1 for w in widths.values()), widths


def test_channel_graph_of_residual_encoder_covers_the_2d_parts_only():
    """mmdet3d's nuScenes CenterPoint encodes with residual sparse blocks (no channel graph
    of the encoder yet): the graph found covers its 2D backbone, neck and head, and says no
    encoder layer can lose channels, where matching once raised a TypeError."""
    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.structured.channel_graph import find_channel_graph
    cfg = load_config('mmdet3d::centerpoint/'
                      'centerpoint_voxel01_second_secfpn_8xb4-cyclic-20e_nus-3d.py')
    model = build_detector(cfg, None, 'cpu')
    layers = [p.layer for g in find_channel_graph(model).groups(model) for p in g.producers]
    assert any(n.startswith('pts_backbone') for n in layers)
    assert not any(n.startswith('pts_middle_encoder') for n in layers)


SPATIAL_CHECKPOINTS = ['second_synth-kitti_cpu_spss50', 'second_synth-kitti_cpu_spss50_fg-margin',
                       'second_synth-kitti_cpu_ada3d', 'centerpoint_synth-kitti_cpu_ada3d',
                       'centerpoint_synth-kitti_cpu_spss50_fg-margin']


@pytest.mark.parametrize('name', SPATIAL_CHECKPOINTS)
def test_channel_slim_of_every_shipped_spatial_checkpoint(name, synth_root, tmp_path):
    """Channel pruning of a spatially pruned detector's 3D encoder (SPS-Conv's, Ada3D's),
    every conv at most 0.9 dense: an SPS-Conv pruning conv keeps exactly its input's
    channels (pruned voxels pass through), the slim model built from the exported config
    alone counts the FLOPs the pruning reported and computes the masked model's head
    outputs; a 'magnitude' score keeps dividing by the widths as trained."""
    from mmengine.config import Config

    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.apis.prune import save_result
    from dm3d_mm.apis.slim import export_slim
    from dm3d_mm.cost import count_flops
    from dm3d_mm.cost.layouts import kept_out_channels
    from dm3d_mm.pruning import DM3DPruner
    from dm3d_mm.pruning.calib_frames import calibration_batches
    from dm3d_mm.structured.channel_graph import find_channel_graph
    from dm3d_mm.weight.head_outputs import build_head_outputs
    config = osp.join(REPO, 'configs/demo', name + '.py')
    ckpt = osp.join(REPO, 'checkpoints', name + '.pth')
    cfg = load_config(config, data_root=synth_root)
    model = build_detector(cfg, ckpt, 'cpu')
    p = 'pts_' if name.startswith('centerpoint') else ''
    batches = calibration_batches(cfg, 1, 'train')
    res = DM3DPruner(0.6, num_ratios=4, progress=False, budget_of='parts', max_density=0.9,
                     granularity='channel', parts=[p + 'middle_encoder']).prune(model, batches)
    groups = [g for g in find_channel_graph(model).groups(model)
              if g.key.startswith(p + 'middle_encoder')]
    spss = 'spss' in name
    assert any(g.same_channels for g in groups) == spss
    modules = dict(model.named_modules())
    for g in groups:
        kept = [kept_out_channels(modules[pr.layer], res.masks[pr.layer])
                for pr in g.producers]
        assert int(kept[0].sum()) < len(kept[0])  # every width shrank (max_density)
        if g.same_channels:
            assert all(torch.equal(kept[0], k) for k in kept[1:]), g.key
    pruned = str(tmp_path / 'pruned.pth')
    save_result(model, res, pruned, ckpt, config)
    out = export_slim(cfg, pruned, str(tmp_path), 'slim')
    enc = Config.fromfile(out['config']).model[p + 'middle_encoder']
    magnitude = enc.get('importance', 'magnitude') == 'magnitude' and spss
    assert (enc.get('score_widths') is not None) == magnitude
    if magnitude:
        trained = cfg.model[p + 'middle_encoder']
        assert enc.score_widths.encoder_channels == tuple(
            tuple(s) for s in trained.encoder_channels)
        assert enc.encoder_channels != enc.score_widths.encoder_channels
    slim_cfg = Config.fromfile(out['config'])
    slim = build_detector(cfg.__class__(dict(cfg.to_dict(), model=slim_cfg.model.to_dict())),
                          out['checkpoint'], 'cpu')
    counted = count_flops(slim, batches, build_head_outputs(slim))
    assert counted.total_macs() / counted.frames == pytest.approx(res.macs_after, rel=1e-9)

    def heads(m):
        data = m.data_preprocessor(batches[0], False)['inputs']
        if p:
            feats = m.extract_pts_feat(data['voxels'], points=data.get('points'),
                                       img_feats=None, batch_input_metas=None)
            return [d[k] for task in m.pts_bbox_head(feats) for d in task for k in sorted(d)]
        return [t for level in m.bbox_head(m.extract_feat(data)) for t in level]
    model.eval()
    with torch.no_grad():
        for a, b in zip(heads(model), heads(slim.eval())):
            assert torch.allclose(a, b, atol=1e-4, rtol=1e-5)


def test_channel_slim_of_the_sparse_head_centerpoint(synth_root, tmp_path):
    """The Ada3D CenterPoint under its sparse-head config (SupportConv2d shared conv, sparse
    neck) channel-pruned in its neck and CenterHead: the slim model built from the exported
    config keeps the sparse head, counts the FLOPs the pruning reported (the shared conv at
    the pixels it reaches) and computes the masked model's head outputs."""
    from mmengine.config import Config

    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.apis.prune import save_result
    from dm3d_mm.apis.slim import export_slim
    from dm3d_mm.cost import count_flops
    from dm3d_mm.pruning import DM3DPruner
    from dm3d_mm.pruning.calib_frames import calibration_batches
    from dm3d_mm.spatial import SupportConv2d
    from dm3d_mm.weight.head_outputs import build_head_outputs
    config = osp.join(REPO, 'configs/demo/centerpoint_synth-kitti_cpu_ada3d_sparse-head.py')
    ckpt = osp.join(REPO, 'checkpoints/centerpoint_synth-kitti_cpu_ada3d.pth')
    cfg = load_config(config, data_root=synth_root)
    model = build_detector(cfg, ckpt, 'cpu')
    batches = calibration_batches(cfg, 1, 'train')
    res = DM3DPruner(0.6, num_ratios=4, progress=False, budget_of='parts', max_density=0.9,
                     granularity='channel', parts=['pts_neck', 'pts_bbox_head'],
                     lambdas=(1.0, 1.0)  # the box branches are measured by box terms only
                     ).prune(model, batches)
    pruned = str(tmp_path / 'pruned.pth')
    save_result(model, res, pruned, ckpt, config)
    out = export_slim(cfg, pruned, str(tmp_path), 'slim')
    slim_cfg = Config.fromfile(out['config'])
    slim = build_detector(cfg.__class__(dict(cfg.to_dict(), model=slim_cfg.model.to_dict())),
                          out['checkpoint'], 'cpu').eval()
    shared = slim.pts_bbox_head.shared_conv.conv
    assert isinstance(shared, SupportConv2d)
    assert shared.out_channels < model.pts_bbox_head.shared_conv.conv.out_channels
    counted = count_flops(slim, batches, build_head_outputs(slim))
    assert counted.total_macs() / counted.frames == pytest.approx(res.macs_after, rel=1e-9)
    st = counted.layers['pts_bbox_head.shared_conv.conv']
    assert st.spatial_saving == 'skipped' and 0 < int(st.pairs[0]) < 64 * 64

    def heads(m):
        data = m.data_preprocessor(batches[0], False)['inputs']
        feats = m.extract_pts_feat(data['voxels'], points=data.get('points'), img_feats=None,
                                   batch_input_metas=None)
        return [d[k] for task in m.pts_bbox_head(feats) for d in task for k in sorted(d)]
    model.eval()
    with torch.no_grad():
        for a, b in zip(heads(model), heads(slim)):
            assert torch.allclose(a, b, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize('config', [
    'mmdet3d::second/second_hv_secfpn_8xb6-80e_kitti-3d-3class.py',
    osp.join(REPO, 'configs/dm3d/second_kitti_spss50.py')])
def test_slim_config_of_an_encoder_left_at_its_class_defaults(config):
    """mmdet3d's SECOND KITTI config (and our SPSS variant of it) names none of its
    encoder's widths (the class defaults apply): the slim config writes them with the new
    widths, and builds to them."""
    from mmdet3d.registry import MODELS
    from mmengine.config import ConfigDict

    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.structured.channel_graph import find_channel_graph
    cfg = load_config(config)
    assert not {'base_channels', 'output_channels', 'encoder_channels'} & set(
        cfg.model.middle_encoder)
    model = build_detector(cfg, None, 'cpu')
    graph = find_channel_graph(model)
    keys = [k for g in graph.groups(model) for k in g.keys if k.startswith('middle_encoder.')]
    assert len(keys) >= 10
    model_cfg = ConfigDict(cfg.model.to_dict())
    graph.rewrite(model_cfg, {k: 8 + 8 * (i % 2) for i, k in enumerate(keys)})
    slim = MODELS.build(model_cfg)
    convs = [m for n, m in slim.middle_encoder.named_modules()
             if n and hasattr(m, 'weight') and m.weight.dim() == 5]
    assert len(convs) == len(keys)
    assert [c.out_channels for c in convs] == [8 + 8 * (i % 2) for i in range(len(keys))]
    height = model.backbone.blocks[0][0].in_channels // model.middle_encoder.output_channels
    assert slim.backbone.blocks[0][0].in_channels == convs[-1].out_channels * height
