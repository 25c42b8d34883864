"""The host-sync count: each op that makes the host wait for the device is counted, the ops
that do not are not, and a detector's count per frame moves by exactly what a hot path adds."""
import os.path as osp

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
    syncs = counter.count.syncs
    assert dict(syncs) == {'aten._local_scalar_dense': 1, 'aten.nonzero': 1,
                           'aten._unique2': 1, 'aten.bincount': 1,
                           'aten.repeat_interleave': 1, 'aten.equal': 1, 'aten.index': 1,
                           'aten.index_put_': 1}
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
