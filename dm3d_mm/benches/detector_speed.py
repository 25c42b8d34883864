"""Whole-detector wall time on one device (a GPU when there is one): dense, spatially pruned
and channel-slim detectors side by side, as ratios to dense measured in the same run.

Settings (--settings, any of):
  second, centerpoint
      the demo detectors with their shipped checkpoints: dense, SPSS 50 % (foreground
      ranking) and Ada3D as shipped, and DM3D channel pruning (all parts, --round-to,
      --min-density) at each --budgets fraction of the joint FLOPs, pruned here on this
      device on --calib-frames train frames and exported slim (a smaller dense model), and
      the joint spatial + channel models: at each --joint-budgets fraction of the dense
      joint FLOPs, the Ada3D model's keep ratios chosen with the channel widths
      (``DM3DPruner(spatial=dict(grid=--joint-grid))``), exported slim with its ratios
  second-kitti
      mmdet3d's full-width SECOND KITTI config (random weights) on the synthetic KITTI frames
      (64-beam forward sector, KITTI's velodyne_reduced density): dense, SPSS 50 %
      (configs/dm3d/second_kitti_spss50.py, the same weights), Ada3D
      (configs/dm3d/second_kitti_ada3d.py: the same weights, its predictor random), DM3D
      channel slim (3D encoder, 2D backbone, neck) and the joint rows
  centerpoint-nus
      mmdet3d's full-width CenterPoint nuScenes config (0.1 m voxels, random weights) on
      generated 10-sweep surround clouds of nuScenes density (~300 k points a frame,
      dm3d_mm/datasets/sweep_clouds.py): dense, SPSS 50 %, Ada3D with the sparse head
      (configs/dm3d/centerpoint_voxel01_nus_ada3d.py), DM3D channel slim of the 2D backbone
      and neck (each --budgets a fraction of their own FLOPs: the residual-block
      SparseEncoder of this config has no channel graph) and the joint rows (the same parts
      slimmed; --joint-budgets of the whole dense detector)
On random weights the DM3D allocation (and Ada3D's random predictor) means nothing for
accuracy; the slim widths and keep ratios they pick still price the speed at that budget.

Timing (dm3d_mm/studies/wall_time.py): the whole detector from the data preprocessor (the copy
of the points to the device, voxelization) to the head outputs, and its 3D / 2D / head
parts; CUDA events on a GPU; --warmup untimed passes, then the median of --repeats per batch,
the models interleaved batch by batch; at each --batch-sizes (frames per batch). Post-
processing (NMS) is not timed. Every model runs the grid-free sort voxelization (the same
voxels as mmcv's) so that the voxelizer is the same for all rows on every machine.

Example: python tools/bench.py detector_speed --settings second centerpoint --budgets 0.5 0.33
         python tools/bench.py detector_speed --device cpu --settings second --frames 4 --repeats 3
"""
import copy
import json
import multiprocessing
import os
import os.path as osp
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu

from ..apis import load_config
from ..apis.model import build_detector, default_device
from ..apis.prune import save_result
from ..apis.slim import export_slim
from ..datasets.sweep_clouds import surround_sweeps
from ..joint.sites import find_sites, keep_ratios
from ..models.sort_voxelization import use_sort_voxelization
from ..pruning import DM3DPruner
from ..pruning.calib_frames import calibration_batches
from ..registry import BENCHES
from ..studies.ablation import joint_gmacs, joint_target
from ..studies.cells import DETECTORS
from ..studies.wall_time import measure
from ..weight.allocators import BudgetBelowFloor
from .base import Bench


@dataclass
class Setting:
    """One detector of the bench.

    Args:
        title (str): table heading.
        config (str): the dense config.
        checkpoint (str | None): its weights (None: random, shared with the spatial rows).
        spatial (dict): row name -> (config, checkpoint or None for the dense weights).
        parts (tuple): parts the channel rows prune.
        pruner (dict): further DM3DPruner arguments.
        points (str): 'dataset' (the config's val split on --data-root) or 'sweeps'
            (generated nuScenes-density surround clouds).
        joint_from (str, optional): the ``spatial`` row whose model the joint spatial +
            channel rows are pruned from. Defaults to None (no joint rows).
        joint_budgets (tuple): the joint rows' budgets, fractions of the dense detector's
            joint FLOPs (--joint-budgets replaces them). Defaults to ().
        joint_parts (tuple, optional): the parts the joint rows slim. Defaults to None
            (``parts``).
    """
    title: str
    config: str
    checkpoint: Optional[str]
    spatial: Dict[str, Tuple[str, Optional[str]]]
    parts: Tuple[str, ...]
    pruner: Dict = field(default_factory=dict)
    points: str = 'dataset'
    joint_from: Optional[str] = None
    joint_budgets: Tuple[float, ...] = ()
    joint_parts: Optional[Tuple[str, ...]] = None


def _demo(name: str, title: str, dense_config: str, joint_budgets: Tuple[float, ...]
          ) -> Setting:
    setup = DETECTORS[name]
    spatial = {'SPSS 50 % (foreground ranking)': setup.spatial['spss50_fg-margin'],
               'Ada3D': setup.spatial['ada3d']}
    return Setting(title, dense_config, setup.checkpoint,
                   {k: (v.config, v.checkpoint) for k, v in spatial.items()},
                   setup.parts['all'].parts, dict(setup.pruner),
                   joint_from='Ada3D',
                   joint_budgets=joint_budgets)


SETTINGS = {
    'second': _demo('second', 'demo SECOND (shipped checkpoints)',
                    'configs/demo/second_synth-kitti_cpu.py', (0.1, 0.05)),
    'centerpoint': _demo('centerpoint', 'demo CenterPoint (shipped checkpoints)',
                         'configs/demo/centerpoint_synth-kitti_cpu.py', (0.3, 0.2)),
    'second-kitti': Setting(
        'mmdet3d SECOND KITTI, full width (random weights), synthetic KITTI frames',
        'mmdet3d::second/second_hv_secfpn_8xb6-80e_kitti-3d-3class.py', None,
        {'SPSS 50 %': ('configs/dm3d/second_kitti_spss50.py', None),
         'Ada3D': ('configs/dm3d/second_kitti_ada3d.py', None)},
        ('middle_encoder', 'backbone', 'neck'),
        joint_from='Ada3D', joint_budgets=(0.04, 0.02)),
    'centerpoint-nus': Setting(
        'mmdet3d CenterPoint nuScenes 0.1 m, full width (random weights), generated 10-sweep '
        'surround clouds',
        'mmdet3d::centerpoint/centerpoint_voxel01_second_secfpn_8xb4-cyclic-20e_nus-3d.py',
        None, {'SPSS 50 %': ('configs/dm3d/centerpoint_voxel01_nus_spss50.py', None),
               'Ada3D (sparse head)': ('configs/dm3d/centerpoint_voxel01_nus_ada3d.py', None)},
        ('pts_backbone', 'pts_neck'), dict(budget_of='parts', lambdas=(1.0, 1.0)), points='sweeps',
        joint_from='Ada3D (sparse head)',
        joint_budgets=(0.4, 0.3), joint_parts=('pts_backbone', 'pts_neck', 'pts_bbox_head')),
}


def sweep_batches(frames: int, seed: int = 0) -> List[dict]:
    """One generated 10-sweep surround cloud per batch (``pseudo_collate`` layout), the
    frames ray-cast in parallel processes (numpy only)."""
    from mmdet3d.structures import Det3DDataSample, LiDARInstance3DBoxes
    with multiprocessing.get_context('fork').Pool(min(frames, os.cpu_count() or 1)) as pool:
        clouds = pool.map(surround_sweeps, range(seed, seed + frames))
    out = []
    for i, cloud in enumerate(clouds):
        sample = Det3DDataSample(metainfo=dict(sample_idx=i, box_type_3d=LiDARInstance3DBoxes))
        out.append(dict(inputs=dict(points=[torch.from_numpy(cloud)]), data_samples=[sample]))
    print(f'  {frames} generated frames, {sum(len(c) for c in clouds) / frames:.0f} points '
          'each on average')
    return out


def group(batches: List[dict], size: int) -> List[dict]:
    """Consecutive one-frame batches merged into batches of ``size`` frames (the last
    partial group dropped)."""
    out = []
    for i in range(0, len(batches) - size + 1, size):
        part = batches[i:i + size]
        out.append(dict(inputs=dict(points=[p for b in part for p in b['inputs']['points']]),
                        data_samples=[s for b in part for s in b['data_samples']]))
    return out


def slim_row(cfg, config: str, checkpoint: str, model, pruner: DM3DPruner, calib,
             work: str, args, device: str):
    """``model`` pruned by ``pruner`` on ``calib`` (timed), saved with its record (keep
    ratios included) under ``work``, exported slim and built on ``device``: (slim model,
    pruning result, seconds), or None when the budget is below what the unpruned rest costs.
    """
    use_sort_voxelization(model)
    t0 = time.perf_counter()
    try:
        result = pruner.prune(model, calib)
    except BudgetBelowFloor as e:
        print(f'  {work}: not reachable: {e}')
        return None
    seconds = time.perf_counter() - t0
    pruned = osp.join(work, 'pruned.pth')
    save_result(model, result, pruned, checkpoint, config)
    slim = export_slim(cfg, pruned, work, 'slim')
    slim_cfg = load_config(slim['config'], data_root=args.data_root)
    return build_detector(slim_cfg, slim['checkpoint'], device), result, seconds


def channel_rows(key: str, cfg, checkpoint: str, calib, args, device
                 ) -> Dict[str, torch.nn.Module]:
    """DM3D channel pruning at each budget on ``device``, exported slim; row -> model."""
    setting = SETTINGS[key]
    rows = OrderedDict()
    for b in args.budgets:
        pruner = DM3DPruner(b, parts=list(setting.parts), num_ratios=args.num_ratios,
                            granularity=dict(type='channel', round_to=args.round_to),
                            min_density=args.min_density, progress=False, **setting.pruner)
        row = slim_row(cfg, setting.config, checkpoint, build_detector(cfg, checkpoint, device),
                       pruner, calib, osp.join(args.work_dir, f'{key}_channel{b:g}'), args,
                       device)
        if row is None:
            continue
        of = ' of the 2D parts' if setting.pruner.get('budget_of') == 'parts' else ''
        name = f'DM3D channel {b:g}{of}, slim'
        rows[name], result, seconds = row
        print(f'  {name}: pruned on {device} in {seconds:.1f} s, '
              f'{result.macs_after / result.macs_before:.3f} of the joint MACs')
    return rows


def spatial_row(cfg, checkpoint: Optional[str], dense_checkpoint: str, path: str,
                device: str) -> Tuple[torch.nn.Module, str]:
    """(model, checkpoint) of a spatial row. ``checkpoint`` None (a random-weight
    setting): the dense model's random weights under every key the two share, the spatial
    model's own initialisation elsewhere (Ada3D's predictor), saved to ``path``."""
    if checkpoint is not None:
        return build_detector(cfg, checkpoint, device), checkpoint
    model = build_detector(cfg, dense_checkpoint, device, strict=False)
    save_checkpoint(dict(state_dict=weights_to_cpu(model.state_dict())), path)
    return model, path


def joint_rows(key: str, dense, cfg, config: str, checkpoint: str, calib, args, device
               ) -> Dict[str, torch.nn.Module]:
    """The joint spatial + channel models at each --joint-budgets fraction of ``dense``'s
    joint FLOPs: the setting's spatial model (``cfg`` loaded from ``config``, weights
    ``checkpoint``), its keep ratios chosen with the channel widths on ``device``, exported
    slim; row -> model. The budget counts the whole detector, so the setting's
    ``budget_of`` does not apply."""
    setting = SETTINGS[key]
    spatial = dict(grid=args.joint_grid)
    pruner_args = {k: v for k, v in setting.pruner.items() if k != 'budget_of'}
    rows = OrderedDict()
    parts = list(setting.joint_parts or setting.parts)
    budgets = setting.joint_budgets if args.joint_budgets is None else args.joint_budgets
    for b in budgets:
        model = build_detector(cfg, checkpoint, device)
        use_sort_voxelization(model)
        target = joint_target(model, dense, calib, b, spatial)
        if target > 1:  # the spatial model at its largest keep ratios is under the budget
            print(f'  joint {b:g}: the spatial model at its largest keep ratios costs '
                  f'{b / target:.3f} of the dense FLOPs, under this budget: row skipped')
            continue
        pruner = DM3DPruner(target, parts=parts, num_ratios=args.num_ratios,
                            granularity=dict(type='channel', round_to=args.round_to),
                            min_density=args.min_density, progress=False, spatial=spatial,
                            **pruner_args)
        row = slim_row(cfg, config, checkpoint, model, pruner, calib,
                       osp.join(args.work_dir, f'{key}_joint{b:g}'), args, device)
        if row is None:
            continue
        name = f'joint Ada3D + DM3D channel {b:g}, slim'
        rows[name], result, seconds = row
        print(f'  {name}: pruned on {device} in {seconds:.1f} s, keep ratios '
              f'{keep_ratios(find_sites(rows[name]))}')
    return rows


def run_setting(key: str, args, device: str) -> Dict:
    setting = SETTINGS[key]
    print(f'## {setting.title}', flush=True)
    cfg = load_config(setting.config, data_root=args.data_root)
    if setting.points == 'sweeps':  # random weights: calibrating on timed frames is harmless
        frames = sweep_batches(max(args.frames, args.calib_frames))
        calib, frames = frames[:args.calib_frames], frames[:args.frames]
    else:
        calib = calibration_batches(cfg, args.calib_frames, 'train')
        frames = calibration_batches(cfg, args.frames, 'val')
    torch.manual_seed(args.seed)  # the random weights (and Ada3D's random predictor)
    dense = build_detector(cfg, setting.checkpoint, device)
    checkpoint = setting.checkpoint
    if checkpoint is None:  # random weights, shared by every row of the setting
        checkpoint = osp.join(args.work_dir, f'{key}_random.pth')
        save_checkpoint(dict(state_dict=weights_to_cpu(dense.state_dict())), checkpoint)
    models = OrderedDict(dense=dense)
    loaded = {}  # spatial row -> (its config, its checkpoint)
    for name, (config, ckpt) in setting.spatial.items():
        if ckpt is not None and not osp.isfile(ckpt):
            print(f'  {name}: {ckpt} is not here (make checkpoints): row skipped')
            continue
        spatial_cfg = load_config(config, data_root=args.data_root)
        models[name], ckpt = spatial_row(spatial_cfg, ckpt, checkpoint, osp.join(
            args.work_dir, f'{key}_{osp.splitext(osp.basename(config))[0]}_random.pth'), device)
        loaded[name] = (spatial_cfg, ckpt)
    if args.budgets:
        models.update(channel_rows(key, cfg, checkpoint, calib, args, device))
    if setting.joint_from in loaded:
        use_sort_voxelization(dense)
        spatial_cfg, ckpt = loaded[setting.joint_from]
        models.update(joint_rows(key, dense.eval(), spatial_cfg,
                                 setting.spatial[setting.joint_from][0], ckpt, calib, args,
                                 device))
    for m in models.values():
        m.eval()
        use_sort_voxelization(m)
    gmacs = {n: joint_gmacs(m, frames[:2]) for n, m in models.items()}
    out = dict(title=setting.title, gmacs=gmacs, device=device, times={})
    for size in args.batch_sizes:
        batches = group(frames, size)
        if not batches:
            print(f'  batch {size}: fewer than {size} frames, skipped')
            continue
        times = measure(models, batches, args.repeats, statistic='median', warmup=args.warmup)
        out['times'][size] = times
        print(table(setting.title, gmacs, times, size), flush=True)
    return out


def table(title: str, gmacs: Dict[str, float], times: Dict[str, List[float]], size: int) -> str:
    """Markdown: per row joint GMACs per frame and the whole / 3D / 2D / head times as ratios
    to dense, and ms per frame."""
    lines = [f'{title}, batch {size}:', '',
             '| variant | GMACs / frame | FLOPs / dense | whole / dense | 3D / dense | '
             '2D / dense | head / dense | whole ms / frame |',
             '|---|---:|---:|---:|---:|---:|---:|---:|']
    ref = times['dense']
    for name, t in times.items():
        lines.append(f"| {name} | {gmacs[name]:.3f} | {gmacs[name] / gmacs['dense']:.3f} | "
                     + ' | '.join(f'{a / b:.3f}' for a, b in zip(t, ref))
                     + f' | {t[0] * 1e3 / size:.2f} |')
    return '\n'.join(lines) + '\n'


@BENCHES.register_module(name='detector_speed')
class DetectorSpeedBench(Bench):
    """Whole-detector wall time of dense, spatial, channel-slim and joint models."""

    def add_arguments(self, p) -> None:
        p.add_argument('--settings', nargs='+', choices=sorted(SETTINGS),
                       default=['second', 'centerpoint', 'second-kitti', 'centerpoint-nus'])
        p.add_argument('--device', help='cuda or cpu (default: cuda when available)')
        p.add_argument('--budgets', type=float, nargs='*', default=[0.5, 0.33],
                       help='channel rows at these fractions of the joint FLOPs (none: no rows)')
        p.add_argument('--joint-budgets', type=float, nargs='*',
                       help='joint spatial + channel rows at these fractions of the dense joint '
                       "FLOPs, in every setting (default: each setting's own; none: no rows)")
        p.add_argument('--joint-grid', type=float, nargs='+', default=[1.0, 0.5],
                       help='keep ratios the joint rows try at every site of the Ada3D model')
        p.add_argument('--seed', type=int, default=0,
                       help='torch seed of the random weights of the full-width settings')
        p.add_argument('--round-to', type=int, default=8)
        p.add_argument('--min-density', type=float, default=0.125)
        p.add_argument('--num-ratios', type=int, default=16)
        p.add_argument('--calib-frames', type=int, default=4)
        p.add_argument('--frames', type=int, default=8, help='val frames timed')
        p.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 8])
        p.add_argument('--repeats', type=int, default=10)
        p.add_argument('--warmup', type=int, default=2)
        p.add_argument('--data-root', default='data/synth_kitti')
        p.add_argument('--work-dir', default='work_dirs/bench_detector_speed',
                       help='pruned, slim and random-weight checkpoints')
        p.add_argument('--out', help='where detector_speed.json goes (default: --work-dir)')

    def run(self, args) -> None:
        args.out = args.out or args.work_dir
        device = args.device or default_device()
        os.makedirs(args.out, exist_ok=True)
        os.makedirs(args.work_dir, exist_ok=True)
        import mmcv
        import spconv

        from ..compat import mmcv_has_cuda_ops
        info = dict(device=device, torch=torch.__version__, threads=torch.get_num_threads(),
                    mmcv=mmcv.__version__ + (' (CUDA ops)' if mmcv_has_cuda_ops()
                                             else ' (CPU ops)'),
                    spconv=spconv.__version__, tf32_conv=torch.backends.cudnn.allow_tf32)
        if device.startswith('cuda'):
            info['gpu'] = torch.cuda.get_device_name()
        print(f'# detector speed: {info}', flush=True)
        results = dict(info=info, settings={})
        failed = []
        for key in args.settings:
            t0 = time.perf_counter()
            try:
                results['settings'][key] = run_setting(key, copy.copy(args), device)
            except Exception:  # the other settings still run: report this one and go on
                traceback.print_exc()
                failed.append(key)
                continue
            results['settings'][key]['bench_seconds'] = time.perf_counter() - t0
            with open(osp.join(args.out, 'detector_speed.json'), 'w') as f:
                json.dump(results, f, indent=1)
        if failed:
            raise SystemExit(f'detector_speed: settings failed: {failed} (tracebacks above)')
