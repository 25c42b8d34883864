"""The wall-time axis of an ablation study: every evaluated cell of a detector (fine-tuned,
pruned or as trained, keep ratios in force) timed side by side with the dense model, whole
detector from voxelization to head outputs, interleaved frame by frame, per frame and part the
best of --repeats.

Writes WORK_DIR/wall_time.json, which `tools/ablate.py` reads for the wall-time column of the
joint table and the second axis of the joint plot (run `tools/ablate.py --report-only` after).

Example: python tools/bench.py frontier_time --work-dir work_dirs/ablate_joint --detector second
"""

from ..registry import BENCHES
from ..studies.ablation import DETECTORS, Ablation
from ..studies.frontier_time import ratio_rows, time_cells, write_wall_times
from ..studies.wall_time import VOXELIZERS
from .base import Bench


@BENCHES.register_module(name='frontier_time')
class FrontierTimeBench(Bench):
    """The wall-time axis of an ablation study: its cells timed side by side."""

    def add_arguments(self, p) -> None:
        p.add_argument('--work-dir', required=True, help="the ablation's work dir")
        p.add_argument('--detector', default='second', choices=sorted(DETECTORS))
        p.add_argument('--data-root', default='data/synth_kitti')
        p.add_argument('--frames', type=int, default=8, help='val frames timed')
        p.add_argument('--repeats', type=int, default=3)
        p.add_argument('--voxelizer', choices=VOXELIZERS, default='mmcv')

    def run(self, args) -> None:
        abl = Ablation(args.work_dir, args.data_root)
        timed = time_cells(abl, args.detector, args.frames, args.repeats, args.voxelizer)
        print('\n'.join(ratio_rows(abl, args.detector, timed)))
        print(f'written: {write_wall_times(args.work_dir, args.detector, timed)}')
