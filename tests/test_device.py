"""CPU and CUDA give the same pair counts, SPSS outputs and DM3D pass: every geometry tensor
lives on the indices' device. Skipped without a GPU (scripts/gpu/ runs it on the device machine)."""
import os
import os.path as osp

import pytest
import torch
from spconv.pytorch import SparseConvTensor
from test_spatial_spss import _random_voxels

import dm3d_mm  # noqa: F401
from dm3d_mm.cost import FlopsCounter, count_pairs
from dm3d_mm.spatial import SPSSSparseConv3d, SPSSSubMConv3d

# the device compared with the CPU: CUDA, or the CPU itself with DM3D_DEVICE_UNDER_TEST=cpu (a
# rehearsal of these tests on a machine without a GPU: every comparison must then hold exactly)
DEVICE = os.environ.get('DM3D_DEVICE_UNDER_TEST', 'cuda')
pytestmark = pytest.mark.skipif(DEVICE == 'cuda' and not torch.cuda.is_available(),
                                reason='needs a CUDA GPU')


@pytest.fixture(autouse=True)
def fresh_pair_counts(monkeypatch):
    """Every pair count enumerated on its own device: the memo of counts (keyed by the site
    sets, whatever their device) would hand the CUDA run the CPU run's counts."""
    from dm3d_mm.cost import pairs
    pairs._memo.clear()
    monkeypatch.setattr(pairs, 'MEMO_SIZE', 0)


@pytest.fixture(autouse=True)
def full_fp32():
    """Compare in full fp32: cuDNN convolutions (and matmuls) may use TF32 by default on
    Ampere and later GPUs, which rounds inputs to 10 mantissa bits (the speed bench keeps the
    defaults, as a user's run would)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_pair_counts_equal_on_cpu_and_cuda():
    idx, _ = _random_voxels(3000, (12, 40, 40))
    fine = idx.long()
    for args in [((3, 3, 3), 1, 1, 1), ((3, 3, 3), 2, 1, 1), ((3, 1, 1), (2, 1, 1), 0, 1)]:
        cpu = count_pairs(fine, fine, *args, memo=False)
        gpu = count_pairs(fine.to(DEVICE), fine.to(DEVICE), *args, memo=False)
        assert torch.equal(cpu, gpu.cpu())


@pytest.mark.parametrize('cls,kw', [(SPSSSubMConv3d, dict(padding=1, indice_key='k')),
                                    (SPSSSparseConv3d, dict(stride=2, padding=1))])
def test_spss_outputs_and_counted_pairs_equal_on_cpu_and_cuda(cls, kw):
    idx, feats = _random_voxels(2000, (12, 40, 40))
    torch.manual_seed(0)
    conv = cls(8, 8, 3, bias=False, prune_ratio=0.5, **kw).eval()
    outs = {}
    for dev in ('cpu', DEVICE):
        m = conv.to(dev)
        x = SparseConvTensor(feats.to(dev), idx.to(dev), [12, 40, 40], 2)
        with torch.no_grad(), FlopsCounter(m) as counter:
            y = m(x)
        order = torch.argsort(y.indices[:, 0].long() * 10**8 + y.indices[:, 1].long() * 10**5
                              + y.indices[:, 2].long() * 300 + y.indices[:, 3].long())
        outs[dev] = (y.indices[order].cpu(), y.features[order].cpu(),
                     next(iter(counter.layers.values())).pairs)
    assert torch.equal(outs['cpu'][0], outs[DEVICE][0])
    assert torch.allclose(outs['cpu'][1], outs[DEVICE][1], atol=1e-4)
    assert torch.equal(outs['cpu'][2], outs[DEVICE][2])


def test_dm3d_prunes_the_demo_second_on_cuda(synth_root):
    from conftest import REPO, demo_config

    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.apis.prune import calibration_batches
    from dm3d_mm.pruning import DM3DPruner
    cfg = demo_config('second', synth_root)
    batches = calibration_batches(cfg, 2, 'train')
    res = {}
    for dev in ('cpu', DEVICE):
        model = build_detector(cfg, REPO + '/checkpoints/second_synth-kitti_cpu.pth', dev)
        res[dev] = DM3DPruner(0.5, num_ratios=8, progress=False).prune(model, batches)
    assert res[DEVICE].macs_before == pytest.approx(res['cpu'].macs_before, rel=1e-9)
    assert res[DEVICE].macs_after <= 0.5 * res[DEVICE].macs_before


def test_voxelization_on_cuda_equals_mmcv_on_cpu():
    """The CUDA voxels (mmcv's CUDA kernel, or the torch sort path when mmcv has no CUDA
    kernels) are mmcv's CPU voxels exactly, through our layer and mmdet3d's."""
    from mmdet3d.models.data_preprocessors.voxelize import VoxelizationByGridShape
    from test_sort_voxelization import RANGE, cloud

    from dm3d_mm.models import SortVoxelization
    from dm3d_mm.models.sort_voxelization import torch_voxel_coordinates, voxel_coordinates
    kw = dict(point_cloud_range=RANGE, voxel_size=[0.2, 0.2, 0.2], max_num_points=5,
              max_voxels=(20000, 300))
    ref = VoxelizationByGridShape(**kw).eval()
    for seed in range(3):
        pts = cloud(3000, seed)
        coors = voxel_coordinates(pts, kw['voxel_size'], RANGE)
        assert torch.equal(torch_voxel_coordinates(pts.to(DEVICE), kw['voxel_size'], RANGE).cpu(),
                           coors)
        expected = ref(pts)
        for layer in (SortVoxelization(**kw).eval(), VoxelizationByGridShape(**kw).eval()):
            got = layer(pts.to(DEVICE))
            for e, g in zip(expected, got):
                assert g.device.type == DEVICE and e.dtype == g.dtype and torch.equal(e, g.cpu())


def _sorted_detections(result):
    pred = result.pred_instances_3d
    order = torch.argsort(pred.scores_3d.cpu(), descending=True, stable=True)
    return pred.bboxes_3d.tensor.cpu()[order], pred.scores_3d.cpu()[order], \
        pred.labels_3d.cpu()[order]


def _demo_models():
    from conftest import REPO

    from dm3d_mm.studies.cells import DETECTORS
    out = {}
    for det in ('second', 'centerpoint'):
        setup = DETECTORS[det]
        cfg = 'configs/demo/%s_synth-kitti_cpu.py' % det
        out[det] = (cfg, setup.checkpoint)
        for name, sp in setup.spatial.items():
            out[f'{det}_{name}'] = (sp.config, sp.checkpoint)
    return {k: (c if '::' in c else osp.join(REPO, c), osp.join(REPO, w))
            for k, (c, w) in out.items() if osp.isfile(osp.join(REPO, w))}


DEMO_MODELS = _demo_models()


@pytest.mark.parametrize('name', sorted(DEMO_MODELS))
def test_detections_and_joint_flops_equal_on_cpu_and_cuda(name, synth_root):
    """A shipped demo detector (dense, SPSS, Ada3D) gives the same joint MACs and the same
    detections on CPU and CUDA (post-processing included: mmcv's NMS, on the CPU copy when
    mmcv has no CUDA kernels)."""
    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.pruning.calib_frames import calibration_batches
    config, ckpt = DEMO_MODELS[name]
    cfg = load_config(config, data_root=synth_root)
    batches = calibration_batches(cfg, 3, 'val')
    got = {}
    for dev in ('cpu', DEVICE):
        model = build_detector(cfg, ckpt, dev)
        with torch.no_grad(), FlopsCounter(model) as counter:
            dets = [_sorted_detections(model.test_step(b)[0]) for b in batches]
            counter.add_frames(len(batches))
        got[dev] = (counter.total_macs(), dets)
    macs_cpu, macs_cuda = got['cpu'][0], got[DEVICE][0]
    print(f'{name}: joint MACs cpu {macs_cpu:.6g} cuda {macs_cuda:.6g}')
    # a dense model runs the same pairs on both; a spatial one ranks sites by computed
    # scores (SPSS's foreground scorer, Ada3D's predictor), where float rounding may swap a
    # near-tied site, so its MACs may move by a few pairs
    dense = name in ('second', 'centerpoint')
    assert macs_cuda == pytest.approx(macs_cpu, rel=0 if dense else 1e-3)
    for (bc, sc, lc), (bg, sg, lg) in zip(got['cpu'][1], got[DEVICE][1]):
        top = min(len(sc), len(sg), 20)  # the confident boxes: no near-tie in the NMS there
        assert top > 0
        assert torch.equal(lc[:top], lg[:top])
        assert torch.allclose(sc[:top], sg[:top], atol=2e-3)
        assert torch.allclose(bc[:top], bg[:top], atol=2e-2)


def test_dm3d_channel_allocation_on_cuda_matches_cpu(synth_root):
    """The same DM3D channel allocation (and slim widths) on both devices, within the float
    noise of the Fisher estimate: per layer densities within 0.05, masks 95 % identical."""
    from conftest import REPO, demo_config

    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.apis.prune import calibration_batches
    from dm3d_mm.pruning import DM3DPruner
    cfg = demo_config('second', synth_root)
    batches = calibration_batches(cfg, 2, 'train')
    res = {}
    for dev in ('cpu', DEVICE):
        model = build_detector(cfg, REPO + '/checkpoints/second_synth-kitti_cpu.pth', dev)
        res[dev] = DM3DPruner(0.5, num_ratios=8, progress=False,
                              granularity=dict(type='channel', round_to=8)).prune(model, batches)
    assert res[DEVICE].macs_after <= 0.5 * res[DEVICE].macs_before
    agree = [float((res['cpu'].masks[n] == res[DEVICE].masks[n].cpu()).float().mean())
             for n in res['cpu'].masks]
    dens = [abs(float(res['cpu'].masks[n].float().mean() - res[DEVICE].masks[n].float().mean()))
            for n in res['cpu'].masks]
    print(f'channel masks identical: {sum(agree) / len(agree):.4f} (min {min(agree):.4f}); '
          f'largest layer density gap {max(dens):.4f}')
    assert min(agree) >= 0.95 and max(dens) <= 0.05


def test_offset_skipping_on_cuda_equals_the_masked_convs():
    """Kernel offsets removed: the swapped spconv layers give the masked layers' outputs on
    CUDA too (spconv's CUDA algorithms, not the CPU pair loop)."""
    import spconv.pytorch as spconv
    from test_granularity import _sparse_input

    from dm3d_mm.structured.offset_skip import skip_pruned_offsets
    torch.manual_seed(0)
    net = spconv.SparseSequential(
        spconv.SubMConv3d(8, 8, 3, padding=1, bias=False, indice_key='s1'),
        spconv.SparseConv3d(8, 16, 3, stride=2, padding=1, bias=False),
        spconv.SubMConv3d(16, 16, 3, padding=1, bias=False, indice_key='s2')).to(DEVICE)
    for i in (0, 1):
        w = net[i].weight.data
        w.view(w.shape[0], 27, w.shape[-1])[:, torch.randperm(27)[:12]] = 0

    def run():
        x = _sparse_input()
        x = spconv.SparseConvTensor(x.features.to(DEVICE), x.indices.to(DEVICE),
                                    x.spatial_shape, 1)
        with torch.no_grad():
            return net(x)

    def by_site(y):  # spconv's CUDA hashing orders the output sites differently per run
        key = ((y.indices[:, 1].long() * 64 + y.indices[:, 2]) * 64 + y.indices[:, 3]).cpu()
        order = torch.argsort(key)
        return y.indices.cpu()[order], y.features.cpu()[order]
    ref = by_site(run())
    assert skip_pruned_offsets(net) == ['0', '1']
    out = by_site(run())
    assert torch.equal(out[0], ref[0])
    assert torch.allclose(out[1], ref[1], atol=1e-4, rtol=1e-4)


def test_latency_cost_model_times_on_cuda(synth_root):
    """cost='latency' on CUDA (synchronised per-conv timing) meets its time budget."""
    from conftest import REPO, demo_config

    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.apis.prune import calibration_batches
    from dm3d_mm.pruning import DM3DPruner
    cfg = demo_config('second', synth_root)
    batches = calibration_batches(cfg, 2, 'train')
    model = build_detector(cfg, REPO + '/checkpoints/second_synth-kitti_cpu.pth', DEVICE)
    res = DM3DPruner(0.8, num_ratios=8, progress=False, parts=['backbone', 'neck'],
                     granularity=dict(type='channel', round_to=8), cost='latency',
                     min_density=0.125).prune(model, batches)
    c = res.cost
    print(f"latency DP on CUDA: {c['before'] * 1e3:.2f} -> {c['after'] * 1e3:.2f} ms "
          f"(budget {c['budget'] * 1e3:.2f})")
    assert 0 < c['after'] <= c['budget'] + 1e-12


def test_mmdet3d_nms_runs_on_cuda_inputs():
    """mmdet3d's rotated NMS takes CUDA boxes and returns CUDA indices (the CPU-copy patch
    when mmcv has no CUDA kernels) equal to the CPU result."""
    from mmdet3d.models.layers import nms_bev
    g = torch.Generator().manual_seed(0)
    boxes = torch.rand(200, 5, generator=g) * torch.tensor([20, 20, 3, 3, 3.14])
    scores = torch.rand(200, generator=g)
    cpu = nms_bev(boxes, scores, 0.3)
    gpu = nms_bev(boxes.to(DEVICE), scores.to(DEVICE), 0.3)
    assert gpu.device.type == DEVICE and torch.equal(cpu, gpu.cpu())


def test_index_less_cuda_device_builds_the_model():
    """'cuda' gets the current GPU's index: torch 2.11's set_device (which mmdet3d's
    init_model calls) refuses an index-less 'cuda', so `--device cuda` failed in every tool."""
    from dm3d_mm.apis.model import resolve_device
    if DEVICE == 'cuda':
        assert resolve_device('cuda') == f'cuda:{torch.cuda.current_device()}'
    assert resolve_device('cpu') == 'cpu'


def test_eval_mode_outputs_carry_gradients_to_every_sparse_conv(synth_root):
    """DM3D's calibration differentiates eval-mode outputs. spconv's CUDA implicit-GEMM convs
    run outside autograd in eval mode, so on CUDA every sparse encoder layer was left out of
    the allocation ("do not reach the measured head outputs"); the compat fix routes them
    through spconv's autograd path when gradients are enabled."""
    from conftest import REPO, demo_config

    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.apis.prune import calibration_batches
    from dm3d_mm.weight.head_outputs import build_head_outputs
    cfg = demo_config('second', synth_root)
    batch = calibration_batches(cfg, 1, 'train')[0]
    model = build_detector(cfg, REPO + '/checkpoints/second_synth-kitti_cpu.pth', DEVICE)
    convs = {n: m for n, m in model.named_modules() if n.startswith('middle_encoder')
             and hasattr(m, 'weight') and m.weight.dim() == 5}
    assert len(convs) >= 10 and not model.training
    p_b, p_c = build_head_outputs(model)(model, batch)
    grads = torch.autograd.grad(p_c.sum(), [m.weight for m in convs.values()],
                                allow_unused=True)
    missing = [n for n, g in zip(convs, grads) if g is None]
    assert not missing, f'no gradient reaches {missing}'
    with torch.no_grad():  # inference keeps spconv's eval path
        p_b2, p_c2 = build_head_outputs(model)(model, batch)
    assert torch.allclose(p_c, p_c2, atol=1e-5) and torch.allclose(p_b, p_b2, atol=1e-5)


def test_joint_channel_allocation_on_cuda_matches_cpu(synth_root, tmp_path):
    """The joint allocation (Ada3D keep ratios chosen with the channel widths) on both
    devices: the same keep ratios, channel masks 95 % identical, the budget met, and the slim
    export built on the device counts the joint MACs the pruning reported there (within the
    near-tied sites Ada3D's float scores may swap)."""
    from conftest import REPO

    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.apis.prune import calibration_batches, save_result
    from dm3d_mm.apis.slim import export_slim
    from dm3d_mm.cost import count_flops
    from dm3d_mm.pruning import DM3DPruner
    from dm3d_mm.weight.head_outputs import build_head_outputs
    config = osp.join(REPO, 'configs/demo/second_synth-kitti_cpu_ada3d.py')
    ckpt = osp.join(REPO, 'checkpoints/second_synth-kitti_cpu_ada3d.pth')
    if not osp.isfile(ckpt):
        pytest.skip(f'{ckpt} is not here (make checkpoints)')
    cfg = load_config(config, data_root=synth_root)
    batches = calibration_batches(cfg, 2, 'train')
    res, models = {}, {}
    for dev in ('cpu', DEVICE):
        models[dev] = build_detector(cfg, ckpt, dev)
        res[dev] = DM3DPruner(0.12, num_ratios=8, progress=False,
                              granularity=dict(type='channel', round_to=8),
                              parts=['middle_encoder', 'backbone', 'neck'],
                              spatial=dict(grid=(0.5, 0.25),
                                           sites=['middle_encoder.bev'])).prune(
                                               models[dev], batches)
        assert res[dev].macs_after <= 0.12 * res[dev].macs_before * (1 + 1e-9)
    print(f"joint keep ratios cpu {res['cpu'].spatial['keep_ratios']} "
          f"{DEVICE} {res[DEVICE].spatial['keep_ratios']}")
    assert res[DEVICE].spatial['keep_ratios'] == res['cpu'].spatial['keep_ratios']
    agree = [float((res['cpu'].masks[n] == res[DEVICE].masks[n].cpu()).float().mean())
             for n in res['cpu'].masks]
    assert min(agree) >= 0.95
    pruned = str(tmp_path / 'pruned.pth')
    save_result(models[DEVICE], res[DEVICE], pruned, ckpt, config)
    out = export_slim(cfg, pruned, str(tmp_path), 'slim')
    slim = build_detector(load_config(out['config'], data_root=synth_root), out['checkpoint'],
                          DEVICE)
    counted = count_flops(slim, batches, build_head_outputs(slim))
    assert counted.total_macs() / counted.frames == pytest.approx(
        res[DEVICE].macs_after, rel=0 if DEVICE == 'cpu' else 1e-3)
