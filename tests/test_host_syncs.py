"""The host-sync count: each op that makes the host wait for the device is counted, the ops
that do not are not, and a detector's count per frame moves by exactly what a hot path adds."""
import os.path as osp

import pytest
import torch
from conftest import REPO

import dm3d_mm  # noqa: F401


def test_each_waiting_op_is_counted_and_the_others_are_not():
    from dm3d_mm.cost.host_syncs import HostSyncCounter
    x = torch.arange(10)
    mask = x > 3
    with HostSyncCounter() as counter:
        x.sum().item()                                    # sync
        torch.nonzero(mask)                               # sync
        torch.unique(x)                                   # sync
        torch.bincount(x, minlength=12)                   # sync (its size is the data's max)
        torch.repeat_interleave(x, x, output_size=45)     # no sync: the size is given
        torch.repeat_interleave(x, x)                     # sync
        torch.equal(x, x)                                 # sync
        x[mask]                                           # sync: boolean mask
        x[torch.tensor([1, 2])]                           # no sync: integer index
        y = x.clone()
        y[mask] = 0                                       # sync: boolean mask assignment
        torch.topk(x, 3)                                  # no sync: known k
        torch.nonzero_static(mask, size=6)                # no sync: the size is given
        x.tolist()                                        # copy to the host
        x.cpu().tolist()                                  # one copy, then a host read
        x.to('cpu').numpy()                               # one copy, then a host read
        x.to(torch.float64)                               # no copy to the host
    syncs = counter.count.syncs
    assert dict(syncs) == {'aten._local_scalar_dense': 1, 'aten.nonzero': 1,
                           'aten._unique2': 1, 'aten.bincount': 1,
                           'aten.repeat_interleave': 1, 'aten.equal': 1, 'aten.index': 1,
                           'aten.index_put_': 1, 'Tensor.tolist': 1, 'Tensor.cpu': 1,
                           'Tensor.to': 1}
    assert counter.count.ops['aten.topk'] == 1 and counter.count.ops['aten.index'] == 2


def test_a_detector_counts_exactly_what_a_hot_path_adds(synth_root):
    """The demo SECOND's test_step on two frames, then the same with one ``.item()`` in the
    neck's forward: exactly one more host sync per frame."""
    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.cost.host_syncs import count_host_syncs
    from dm3d_mm.pruning.calib_frames import calibration_batches
    cfg = load_config(osp.join(REPO, 'configs/demo/second_synth-kitti_cpu.py'),
                      data_root=synth_root)
    model = build_detector(cfg, osp.join(REPO, 'checkpoints/second_synth-kitti_cpu.pth'),
                           'cpu')
    batches = calibration_batches(cfg, 2, 'val')
    before = count_host_syncs(model, batches)
    assert before.frames == 2 and before.per_frame()['ops'] > 100
    def item_in_the_neck(module, inputs, output):  # a value the host reads, as .item() does
        float(output[0].sum())

    handle = model.neck.register_forward_hook(item_in_the_neck)
    after = count_host_syncs(model, batches)
    handle.remove()
    assert after.per_frame()['syncs'] == before.per_frame()['syncs'] + 1
    assert after.syncs['aten._local_scalar_dense'] == \
        before.syncs['aten._local_scalar_dense'] + 2


def _keep_mask_by_threshold(scores, batch, prune_ratio):
    """The per-sample reference: the floor(n * ratio) lowest scores go, ties at the
    threshold lowest position first (kthvalue and a scan, one sample at a time)."""
    keep = torch.ones(len(scores), dtype=torch.bool)
    for b in batch.unique().tolist():
        rows = torch.nonzero(batch == b).flatten()
        n_pruned = int(len(rows) * prune_ratio)
        if not n_pruned:
            continue
        sample = scores[rows]
        thr = torch.kthvalue(sample, n_pruned).values
        below = sample < thr
        ties = torch.nonzero(sample == thr).flatten()[:n_pruned - int(below.sum())]
        below[ties] = True
        keep[rows[below]] = False
    return keep


def test_keep_mask_is_the_per_sample_threshold_without_a_host_sync():
    """Random scores with many ties, 1-3 samples (one empty), several ratios: the sorted,
    sync-free keep mask equals the per-sample threshold scan, and with the batch size given
    it issues no host sync. Fails with the sort made unstable (ties by position lost) or the
    ranks counted over the whole batch."""
    from dm3d_mm.cost.host_syncs import HostSyncCounter
    from dm3d_mm.spatial.importance import keep_mask
    gen = torch.Generator().manual_seed(0)
    for trial in range(20):
        n = int(torch.randint(1, 400, (1, ), generator=gen))
        scores = torch.randint(0, 12, (n, ), generator=gen).float() / 11  # ties
        batch_size = 1 + trial % 3
        batch = torch.randint(0, batch_size, (n, ), generator=gen)
        batch[batch == 1] = 2 if batch_size == 3 else 1  # sample 1 empty in a batch of 3
        for ratio in (0.1, 0.25, 0.5, 0.75, 0.9):
            with HostSyncCounter() as counter:
                got = keep_mask(scores, batch, ratio, batch_size)
            assert torch.equal(got, _keep_mask_by_threshold(scores, batch, ratio))
            assert sum(counter.count.syncs.values()) == 0, counter.count.syncs


def test_column_keep_ranks_each_column_once_without_a_host_sync():
    """Random voxels (several per BEV column, 1-3 samples, tied importances, unsorted):
    every voxel's keep is its column's, the columns ranked per sample as the distinct
    columns (``unique``) ranked by the threshold scan; with the batch size given, no host
    sync. Fails if the voxels were ranked one by one (a column of many voxels would count
    many times) or a column's voxels took another column's decision."""
    from dm3d_mm.cost.host_syncs import HostSyncCounter
    from dm3d_mm.spatial import column_keep
    gen = torch.Generator().manual_seed(1)
    for trial in range(12):
        batch_size = 1 + trial % 3
        n = int(torch.randint(1, 300, (1, ), generator=gen))
        idx = torch.stack([torch.randint(0, batch_size, (n, ), generator=gen),
                           torch.randint(0, 4, (n, ), generator=gen),
                           torch.randint(0, 6, (n, ), generator=gen),
                           torch.randint(0, 5, (n, ), generator=gen)], 1).int()
        imp = (torch.randint(0, 5, (batch_size, 1, 6, 5), generator=gen).float() / 4)
        for ratio in (0.25, 0.5, 0.75):
            with HostSyncCounter() as counter:
                got = column_keep(idx, (6, 5), imp, ratio, batch_size)
            assert sum(counter.count.syncs.values()) == 0, counter.count.syncs
            col = (idx[:, 0].long() * 6 + idx[:, 2]) * 5 + idx[:, 3]
            cols, inverse = torch.unique(col, return_inverse=True)
            ref = _keep_mask_by_threshold(imp.reshape(-1)[cols], cols // 30, 1 - ratio)
            assert torch.equal(got, ref[inverse]), (trial, ratio)


def _bev_rulebook_per_offset(mask_in, mask_out, kernel_size, stride, padding, dilation):
    """The reference: each offset's pairs selected with a boolean mask, offset by offset."""
    n, h, w = mask_in.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    ids = torch.full((n, h + 2 * ph + sh + (kh - 1) * dh, w + 2 * pw + sw + (kw - 1) * dw),
                     -1, dtype=torch.long)
    ids[:, ph:ph + h, pw:pw + w][mask_in] = torch.arange(int(mask_in.sum()))
    b, yo, xo = torch.nonzero(mask_out).unbind(1)
    out_rows = torch.arange(len(b))
    pairs = []
    for ky in range(kh):
        for kx in range(kw):
            rows = ids[b, yo * sh + ky * dh, xo * sw + kx * dw]
            hit = rows >= 0
            pairs.append((rows[hit], out_rows[hit]))
    return pairs


def test_bev_rulebook_has_every_offsets_pairs_in_order_with_two_host_syncs():
    """Random BEV masks and the 2D convs' geometries (3x3 stride 1 / 2, padded, dilated,
    submanifold and regular outputs): the rulebook built with one selection over all offsets
    holds exactly the per-offset reference's pairs, offset by offset in the same order,
    its counts those of the pairs and its output count the active outputs; two host syncs
    (the active outputs' count and the pairs per offset), none more for the counts; with the
    input's count known, the same pairs per offset enumerated from the inputs in one sync,
    and with flags of the input rows, those of the live pixels' rulebook. Fails with the
    offsets' hits taken column-major, the inputs' stride test or the flags dropped."""
    import torch.nn.functional as F

    from dm3d_mm.cost.host_syncs import HostSyncCounter
    from dm3d_mm.spatial.active_pixels import known_count, remember_count
    from dm3d_mm.spatial.sparse_bev_conv import bev_rulebook
    gen = torch.Generator().manual_seed(1)
    geometries = [((3, 3), (1, 1), (1, 1), (1, 1)), ((3, 3), (2, 2), (1, 1), (1, 1)),
                  ((3, 3), (1, 1), (1, 1), (2, 2)), ((1, 1), (1, 1), (0, 0), (1, 1))]
    for density in (0.05, 0.3, 0.8):
        mask_in = torch.rand(2, 13, 17, generator=gen) < density
        for k, s, p, d in geometries:
            for regular in (False, True):
                m = mask_in[:, None].float()
                out = F.max_pool2d(m, k, s, p, d) if regular else \
                    F.max_pool2d(m, s, s, ceil_mode=True)
                ho = (13 + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
                wo = (17 + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
                mask_out = out[:, 0, :ho, :wo] > 0
                with HostSyncCounter() as counter:
                    book = bev_rulebook(mask_in, mask_out, k, s, p, d)
                assert sum(counter.count.syncs.values()) == 2, counter.count.syncs
                ref = _bev_rulebook_per_offset(mask_in, mask_out, k, s, p, d)
                assert torch.equal(book.rows_in, torch.cat([i for i, _ in ref]))
                assert torch.equal(book.rows_out, torch.cat([o for _, o in ref]))
                assert book.counts().tolist() == [len(i) for i, _ in ref]
                with HostSyncCounter() as counter:
                    assert book.host_counts() == [len(i) for i, _ in ref]
                assert not counter.count.syncs
                assert book.num_out == int(mask_out.sum())
                # the input's count known on the host (as the row path knows it): the pairs
                # enumerated from the inputs, the same pairs per offset, the output count
                # read with them (one sync)
                remember_count(mask_in, int(mask_in.sum()))
                fresh_out = mask_out.clone()  # its count unknown
                with HostSyncCounter() as counter:
                    by_in = bev_rulebook(mask_in, fresh_out, k, s, p, d)
                assert sum(counter.count.syncs.values()) == 1, counter.count.syncs
                assert by_in.host_counts() == [len(i) for i, _ in ref]
                assert by_in.num_out == book.num_out == known_count(fresh_out)
                for (i, o), seg_i, seg_o in zip(ref, by_in.rows_in.split(by_in.sizes),
                                                by_in.rows_out.split(by_in.sizes)):
                    assert sorted(zip(i.tolist(), o.tolist())) == \
                        sorted(zip(seg_i.tolist(), seg_o.tolist()))
                # flags of the input rows: the pairs of the live ones only, those of the
                # rulebook of the live pixels, read in one sync
                alive = torch.rand(int(mask_in.sum()), generator=gen) < 0.7
                live_in = torch.zeros_like(mask_in)
                live_in.view(-1)[mask_in.view(-1).nonzero().flatten()] = alive
                lm = live_in[:, None].float()
                live_out = (F.max_pool2d(lm, k, s, p, d) if regular else
                            F.max_pool2d(lm, s, s, ceil_mode=True))[:, 0, :ho, :wo] > 0
                with HostSyncCounter() as counter:
                    of_live = bev_rulebook(mask_in, live_out, k, s, p, d, alive=alive)
                assert sum(counter.count.syncs.values()) == 1, counter.count.syncs
                rows_of = torch.nonzero(alive).flatten()  # live row -> row of mask_in
                ref = _bev_rulebook_per_offset(live_in, live_out, k, s, p, d)
                assert of_live.host_counts() == [len(i) for i, _ in ref]
                assert of_live.num_out == int(live_out.sum())
                for (i, o), seg_i, seg_o in zip(ref, of_live.rows_in.split(of_live.sizes),
                                                of_live.rows_out.split(of_live.sizes)):
                    assert sorted(zip(rows_of[i].tolist(), o.tolist())) == \
                        sorted(zip(seg_i.tolist(), seg_o.tolist()))
                forget = mask_in.clone()  # the next geometry: a mask whose count is unknown
                mask_in = forget


# per shipped spatial demo model, on the first val frame: its checkpoint, the host syncs of
# its test_step along the code path a CUDA run takes, at most (tools/bench.py host_syncs;
# docs/gpu.md: a new wait in a hot path fails here; the dense models: SECOND 33, CenterPoint
# 102) and its joint MACs, exactly (the counted pairs of the sites it keeps, the same before
# and after the sync-free rewrite)
PINNED = {
    'second_synth-kitti_cpu_spss50_fg-margin': ('second_synth-kitti_cpu_spss50_fg-margin', 42,
                                                2118577872),
    'second_synth-kitti_cpu_ada3d': ('second_synth-kitti_cpu_ada3d', 39, 477912416),
    'centerpoint_synth-kitti_cpu_ada3d_sparse-head': ('centerpoint_synth-kitti_cpu_ada3d', 56,
                                                      1794005344),
}


@pytest.mark.parametrize('config', sorted(PINNED))
def test_shipped_spatial_models_wait_no_more_often_than_pinned(config, synth_root):
    """Fails with a ``.item()`` added to a spatial module's forward, or with a change in the
    sites a spatial module keeps (its counted pairs)."""
    from dm3d_mm.apis import load_config
    from dm3d_mm.apis.model import build_detector
    from dm3d_mm.cost import count_flops
    from dm3d_mm.cost.host_syncs import count_host_syncs
    from dm3d_mm.pruning.calib_frames import calibration_batches
    from dm3d_mm.weight.head_outputs import build_head_outputs
    checkpoint, pinned, macs = PINNED[config]
    cfg = load_config(osp.join(REPO, f'configs/demo/{config}.py'), data_root=synth_root)
    model = build_detector(cfg, osp.join(REPO, f'checkpoints/{checkpoint}.pth'), 'cpu')
    batches = calibration_batches(cfg, 1, 'val')
    count = count_host_syncs(model, batches, where=True)
    syncs = count.per_frame()['syncs']
    assert syncs <= pinned, f'{syncs} > {pinned}: ' + ', '.join(
        f'{n} {site}' for site, n in count.sites.most_common(8))
    counted = count_flops(model, batches, build_head_outputs(model, None, 'confidence'))
    assert counted.total_macs() == macs


def test_unique_sites_of_the_valid_rows_without_selecting_them():
    """Random sites (duplicates, several samples, coordinates up to the key's width) with a
    validity mask: the sorted unique valid rows, as a boolean selection and a row-wise unique
    give them, with one host sync (the unique's size). Fails with the sentinel sorted first."""
    from dm3d_mm.cost.host_syncs import HostSyncCounter
    from dm3d_mm.sparse.rulebook import KEY_BITS, unique_sites
    gen = torch.Generator().manual_seed(3)
    top = (1 << KEY_BITS) - 1
    for n in (1, 7, 300):
        sites = torch.cat([torch.randint(0, 3, (n, 1), generator=gen),
                           torch.randint(0, 5, (n, 3), generator=gen)], 1)
        sites[::5, 1:] = top  # the largest coordinates a key holds
        valid = torch.rand(n, generator=gen) < 0.6
        with HostSyncCounter() as counter:
            got = unique_sites(sites, valid)
        assert sum(counter.count.syncs.values()) == 1, counter.count.syncs
        assert torch.equal(got, torch.unique(sites[valid], dim=0))
        assert torch.equal(unique_sites(sites), torch.unique(sites, dim=0))
