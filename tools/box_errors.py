"""Per-class box errors of a detector on val frames: x/y, z and height of the detections
matched to GT boxes (does a 3D AP loss come from placing boxes in z?).

Example:
  python tools/box_errors.py configs/demo/centerpoint_synth-kitti_cpu_spss50_fg-margin.py \
      checkpoints/centerpoint_synth-kitti_cpu_spss50_fg-margin.pth --frames 40
"""
import argparse

import dm3d_mm  # noqa: F401
from dm3d_mm.apis import load_config
from dm3d_mm.apis.cli import add_debug_arg, add_model_args, run_cli
from dm3d_mm.apis.config_utils import add_data_args, parse_ann_files
from dm3d_mm.apis.model import build_detector, default_device
from dm3d_mm.errors import UserError
from dm3d_mm.pruning.calib_frames import calibration_batches
from dm3d_mm.studies.box_errors import box_error_table, matched_box_errors


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--frames', type=int, default=40, help='val frames, evenly spaced')
    p.add_argument('--score-thr', type=float, default=0.3)
    p.add_argument('--radius', type=float, default=1.0,
                   help='a detection matches a GT box of its class within this BEV distance')
    add_data_args(p)
    add_model_args(p)
    add_debug_arg(p)
    args = p.parse_args()
    if args.radius <= 0 or args.frames < 1:
        raise UserError(f'radius must be > 0 metres and frames >= 1, got radius {args.radius}, '
                         f'frames {args.frames}')
    cfg = load_config(args.config, args.cfg_options, data_root=args.data_root,
                      ann_files=parse_ann_files(args.ann_file))
    model = build_detector(cfg, args.checkpoint, args.device or default_device(),
                           strict=not args.allow_partial)
    errors = matched_box_errors(model, calibration_batches(cfg, args.frames, 'val'),
                                args.score_thr, args.radius)
    print(box_error_table(errors))


if __name__ == '__main__':
    run_cli(main)
