"""Side-by-side wall time: part clocks, the median statistic, batching of the bench, and the
generated surround clouds the full-width nuScenes rows are timed on."""
import time

import numpy as np
import pytest
import torch

from dm3d_mm.studies.wall_time import PartClock, measure


def test_part_clock_marks_sum_to_the_whole():
    clock = PartClock(cuda=False)
    clock.mark()
    time.sleep(0.01)
    clock.mark()
    time.sleep(0.02)
    clock.mark()
    a, b, whole = clock.seconds(0, 1), clock.seconds(1, 2), clock.seconds(0, 2)
    assert a >= 0.01 and b >= 0.02 and whole == pytest.approx(a + b)


def test_measure_takes_the_median_or_best_of_each_batch(monkeypatch):
    """Interleaved repeats reduce per batch then average over batches."""
    import dm3d_mm.studies.wall_time as wt
    runs = {'a': iter([(1, 0, 0, 0), (9, 0, 0, 0), (3, 0, 0, 0),     # warm-up + 2 repeats, b0
                       (5, 0, 0, 0), (7, 0, 0, 0), (2, 0, 0, 0)])}  # b1 (interleaved order)
    order = []

    def fake(model, batch):
        order.append(batch)
        return next(runs['a'])
    monkeypatch.setattr(wt, 'timed_forward', fake)
    m = torch.nn.Linear(1, 1)
    # warm-up: b0 (1), b1 (9); repeats: b0 (3), b1 (5), b0 (7), b1 (2)
    best = measure({'m': m}, ['b0', 'b1'], repeats=2, statistic='best', warmup=1)
    assert order == ['b0', 'b1', 'b0', 'b1', 'b0', 'b1']
    assert best['m'][0] == pytest.approx((3 + 2) / 2)
    runs['a'] = iter([(1, 0, 0, 0), (9, 0, 0, 0), (3, 0, 0, 0), (5, 0, 0, 0), (7, 0, 0, 0),
                      (2, 0, 0, 0), (4, 0, 0, 0), (6, 0, 0, 0)])
    med = measure({'m': m}, ['b0', 'b1'], repeats=3, statistic='median', warmup=1)
    # b0: 3, 7, 4 -> 4; b1: 5, 2, 6 -> 5
    assert med['m'][0] == pytest.approx((4 + 5) / 2)
    with pytest.raises(ValueError, match='statistic'):
        measure({'m': m}, ['b0'], repeats=1, statistic='mean')


def test_surround_sweeps_have_nuscenes_density():
    from dm3d_mm.datasets.sweep_clouds import surround_sweeps
    one = surround_sweeps(0, sweeps=1)
    two = surround_sweeps(0, sweeps=2)
    assert one.shape[1] == 5 and one.dtype == np.float32
    assert 20000 < len(one) < 36000  # an HDL-32E sweep: ~34 k rays, a few without return
    assert np.all(one[:, 4] == 0) and np.allclose(np.unique(two[:, 4]), [0.0, 0.05])
    az = np.degrees(np.arctan2(one[:, 1], one[:, 0]))
    assert az.min() < -170 and az.max() > 170  # all round, not KITTI's forward sector
    with pytest.raises(ValueError, match='sweeps'):
        surround_sweeps(0, sweeps=0)
