"""Host syncs and aten ops per frame of the shipped demo models' ``test_step`` (what a GPU
would wait on; ``dm3d_mm/cost/host_syncs.py`` says what counts), counted on the CPU along the
code path a CUDA run takes.

Example:
  python tools/bench.py host_syncs --frames 4
"""

from ..apis import load_config
from ..apis.model import build_detector
from ..cost.host_syncs import count_host_syncs
from ..pruning.calib_frames import calibration_batches
from ..registry import BENCHES
from .base import Bench

MODELS = {  # row -> (config, checkpoint) of the shipped demo models
    'SECOND dense': ('second_synth-kitti_cpu', 'second_synth-kitti_cpu'),
    'SECOND SPSS 50 %': ('second_synth-kitti_cpu_spss50', 'second_synth-kitti_cpu_spss50'),
    'SECOND SPSS-fg': ('second_synth-kitti_cpu_spss50_fg-margin',
                       'second_synth-kitti_cpu_spss50_fg-margin'),
    'SECOND Ada3D': ('second_synth-kitti_cpu_ada3d', 'second_synth-kitti_cpu_ada3d'),
    'CenterPoint dense': ('centerpoint_synth-kitti_cpu', 'centerpoint_synth-kitti_cpu'),
    'CenterPoint SPSS-fg': ('centerpoint_synth-kitti_cpu_spss50_fg-margin',
                            'centerpoint_synth-kitti_cpu_spss50_fg-margin'),
    'CenterPoint Ada3D': ('centerpoint_synth-kitti_cpu_ada3d',
                          'centerpoint_synth-kitti_cpu_ada3d'),
    'CenterPoint Ada3D, sparse head': ('centerpoint_synth-kitti_cpu_ada3d_sparse-head',
                                       'centerpoint_synth-kitti_cpu_ada3d'),
    'CenterPoint Ada3D-KD, sparse head': ('centerpoint_synth-kitti_cpu_ada3d_sparse-head',
                                          'centerpoint_synth-kitti_cpu_ada3d-kd'),
}


@BENCHES.register_module(name='host_syncs')
class HostSyncsBench(Bench):
    """Host syncs and aten ops per frame of the shipped demo models, on the CPU."""

    def add_arguments(self, p) -> None:
        p.add_argument('--frames', type=int, default=4, help='val frames counted per model')
        p.add_argument('--data-root', default='data/synth_kitti/')
        p.add_argument('--models', nargs='+', choices=list(MODELS), default=list(MODELS))
        p.add_argument('--cpu-path', action='store_true',
                       help='count the code path the models take on this CPU (SPS-Conv decoding '
                            "spconv's CPU rulebooks) instead of the one a CUDA run takes")

    def run(self, args) -> None:
        print('| demo model | aten ops / frame | host syncs / frame | syncs by op (per frame) |')
        print('|---|---:|---:|---|')
        for row in args.models:
            config, ckpt = MODELS[row]
            cfg = load_config(f'configs/demo/{config}.py', data_root=args.data_root)
            model = build_detector(cfg, f'checkpoints/{ckpt}.pth')
            count = count_host_syncs(model, calibration_batches(cfg, args.frames, 'val'),
                                     cuda_path=not args.cpu_path)
            per = count.per_frame()
            by_op = ', '.join(f'{n / count.frames:g} {op.split(".")[-1]}'
                              for op, n in count.syncs.most_common())
            print(f"| {row} | {per['ops']:.0f} | {per['syncs']:g} | {by_op} |", flush=True)
