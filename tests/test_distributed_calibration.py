"""DM3D calibration under a 2-process gloo group equals the single-process result; a latency
budget is allocated with rank 0's timings on every rank."""
import os.path as osp

import torch
import torch.multiprocessing as mp
from conftest import REPO, demo_config

CKPT = osp.join(REPO, 'checkpoints/second_synth-kitti_cpu.pth')
FRAMES, RATIOS = 4, 8


def _prune(synth_root):
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.apis.prune import calibration_batches
    from dm3d_mm.pruning import DM3DPruner
    cfg = demo_config('second', synth_root)
    model = build_detector(cfg, CKPT)
    batches = calibration_batches(cfg, FRAMES, 'train')
    res = DM3DPruner(0.5, num_ratios=RATIOS, progress=False).prune(model, batches)
    return dict(masks=res.masks, macs_before=res.macs_before, macs_after=res.macs_after,
                curves={n: c['distortion'] for n, c in res.curves.items()},
                measured=res.measured_distortion)


def _worker(rank, world, init_file, synth_root, out_dir):
    import torch.distributed as tdist
    torch.set_num_threads(1)
    tdist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                             world_size=world)
    try:
        torch.save(_prune(synth_root), osp.join(out_dir, f'rank{rank}.pt'))
    finally:
        tdist.destroy_process_group()


def test_two_process_calibration_equals_single_process(synth_root, tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / 'init'), synth_root, str(tmp_path)), nprocs=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic as the workers
    try:
        single = _prune(synth_root)
    finally:
        torch.set_num_threads(threads)
    for rank in (0, 1):
        got = torch.load(tmp_path / f'rank{rank}.pt', weights_only=False)
        assert got['macs_before'] == single['macs_before']  # pairs summed over ranks
        assert got['macs_after'] == single['macs_after']
        for name, curve in single['curves'].items():
            assert torch.allclose(torch.tensor(got['curves'][name]), torch.tensor(curve),
                                  rtol=1e-5, atol=1e-9), name
        assert set(got['masks']) == set(single['masks'])
        assert all(torch.equal(got['masks'][n], single['masks'][n]) for n in single['masks'])
        assert abs(got['measured'] - single['measured']) <= 1e-6 * max(single['measured'], 1)


def _rank_dependent_probe(name, layer, inputs, cin, cout):
    """A 'timer' that disagrees between ranks: rank 1 sees the 2D backbone as free."""
    import torch.distributed as tdist
    if tdist.is_initialized() and tdist.get_rank() == 1 and name.startswith('backbone'):
        return 1e-3
    return 1e-9 * float(layer.weight.numel()) * cin * cout


def _latency_worker(rank, world, init_file, synth_root, out_dir):
    import torch.distributed as tdist

    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.apis.prune import calibration_batches
    from dm3d_mm.cost.latency_cost import LatencyCost
    from dm3d_mm.pruning import DM3DPruner
    torch.set_num_threads(1)
    tdist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                             world_size=world)
    try:
        cfg = demo_config('second', synth_root)
        model = build_detector(cfg, CKPT)
        batches = calibration_batches(cfg, 2, 'train')
        cost = LatencyCost(widths=(0.5, ), repeats=1, probe=_rank_dependent_probe)
        res = DM3DPruner(0.7, num_ratios=4, parts=['backbone', 'neck'], granularity='channel',
                         progress=False, cost=cost).prune(model, batches)
        torch.save(res.masks, osp.join(out_dir, f'latency{rank}.pt'))
    finally:
        tdist.destroy_process_group()


def test_two_process_latency_allocation_uses_rank_0_timings(synth_root, tmp_path):
    mp.spawn(_latency_worker, args=(2, str(tmp_path / 'init'), synth_root, str(tmp_path)),
             nprocs=2)
    m0, m1 = (torch.load(tmp_path / f'latency{r}.pt', weights_only=False) for r in (0, 1))
    assert set(m0) == set(m1) and all(torch.equal(m0[n], m1[n]) for n in m0)
    # rank 0's timings price the backbone: it is pruned on both ranks
    assert any(not bool(m0[n].all()) for n in m0 if n.startswith('backbone'))
