"""The DM3D paper's studies in miniature on the demo detectors (Fig. 1, 4, Tab. 1/2, 4, 5, 6).

Studies (--study, any of):
  fig1   dense, the dense-ft control, DM3D / uniform / LAMP (--methods) at each --budgets,
         each spatial model (SPS-Conv, Ada3D) and DM3D on top of each at the first two
         budgets; Fig. 4 (DM3D's layer-wise sparsity per budget) comes from the same cells
  tab12  DM3D against Ada3D at Ada3D's measured joint FLOPs
  tab6   DM3D on top of each spatial model at the first two budgets (pruning --parts),
         against the spatial model fine-tuned on the same schedule
  tab4   weight pruning of 3D / 2D / head alone at the first budget
  tab5   fisher against actual distortion curves at the first budget
  joint  the joint allocation (keep ratios and weight densities chosen together) on each
         spatial model (default Ada3D) at each budget, against the spatial model at its
         trained keep ratios + DM3D to the same FLOPs and DM3D alone
Every weight cell and the dense-ft control is fine-tuned for --epochs with frozen BN
statistics (weight cells with their masks kept), then evaluated on val. Results:
WORK_DIR/ablation.json (written after each cell with its seconds; a re-run skips finished
cells), markdown tables on stdout and in WORK_DIR/ablation.md, plots
WORK_DIR/fig1_<detector>.png and fig4_<detector>.png.

Example: python tools/ablate.py --detector second --study fig1 --budgets 0.5 0.33 0.25 0.2
"""
import argparse
import os.path as osp

import dm3d_mm  # noqa: F401
from dm3d_mm.apis.cli import (
    add_debug_arg,
    add_spatial_objective_args,
    add_spatial_rerank_args,
    run_cli,
    spatial_objective_of,
    spatial_rerank_of,
)
from dm3d_mm.errors import MissingFile
from dm3d_mm.pruning.pruner import METHODS
from dm3d_mm.registry import SPATIAL_SEARCHES
from dm3d_mm.studies.ablation import DETECTORS, RESULTS_FILE, STUDIES, Ablation
from dm3d_mm.studies.cells import JOINT_SERIES, RECOVERIES
from dm3d_mm.studies.frontier_time import read_wall_times
from dm3d_mm.studies.report import (
    plot_ap_vs_flops,
    plot_joint_frontier,
    plot_layer_allocation,
    rows_of,
    table_all,
    table_estimators,
    table_joint,
    table_parts,
    table_tab6,
    table_tab12,
)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n'.join(__doc__.splitlines()[2:]))
    p.add_argument('--detector', nargs='+', default=['second'], choices=sorted(DETECTORS))
    p.add_argument('--study', nargs='+', default=['fig1'], choices=sorted(STUDIES))
    p.add_argument('--budgets', type=float, nargs='+', default=[0.5, 0.33, 0.25, 0.2])
    p.add_argument('--methods', nargs='+', default=['dm3d', 'uniform', 'lamp'],
                   choices=METHODS, help='weight methods of fig1')
    p.add_argument('--spatial', nargs='+', default=None,
                   help="spatial models of fig1 / tab6 (default: all of the detector's; "
                        "'none': no spatial cells)")
    p.add_argument('--parts', default='all',
                   help="part set the weight cells of fig1 and tab6 prune (the detector's: "
                        "'all', or 'all+head' on SECOND: the anchor head's output convs too)")
    p.add_argument('--min-density', type=float, default=0.0,
                   help='floor on every layer\'s weight density in the DM3D cells of fig1 / '
                        'tab6 (a cell of its own: name suffix -floor<percent>)')
    p.add_argument('--epochs', type=int, default=None,
                   help="fine-tune epochs (default: each config's schedule; 0: no fine-tune)")
    p.add_argument('--calib-frames', type=int, default=16)
    p.add_argument('--spatial-grid', type=float, nargs='+',
                   help='keep ratios the joint cells try at every site (default: the '
                        "pruner's, 1.0 0.75 0.5 0.25, and each site's trained ratio)")
    p.add_argument('--spatial-sites', nargs='+', metavar='LOCATION',
                   help="the joint cells' sites, locations of the spatial model's 3D encoder, "
                        "e.g. input stage2 stage4 bev (default: those the model drops at; "
                        "another set needs its own work dir)")
    p.add_argument('--spatial-search', choices=sorted(SPATIAL_SEARCHES.module_dict),
                   help="the joint cells' search over the combinations (default 'grid': every "
                        "one; 'coordinate': coordinate descent over the sites)")
    add_spatial_objective_args(p)
    add_spatial_rerank_args(p)
    p.add_argument('--series', nargs='+', default=list(JOINT_SERIES), choices=JOINT_SERIES,
                   help="what the joint study runs: 'controls' (dense-ft, the spatial model "
                        "fine-tuned), and at each budget 'dm3d' (DM3D alone), 'joint', 'hand' "
                        "(hand-set spatial + DM3D); default all")
    p.add_argument('--recovery', nargs='+', default=['finetune'], choices=RECOVERIES,
                   help="how the joint study's weight cells recover: 'finetune' (masks kept) "
                        "and / or 'kd' (the same schedule with the dense model as a frozen "
                        'teacher); each weight cell once per recovery')
    p.add_argument('--data-root', default='data/synth_kitti')
    p.add_argument('--checkpoint', nargs='+', default=[], metavar='KEY=PATH',
                   help="replace a demo checkpoint, e.g. second=my.pth second:ada3d=a.pth; "
                        "centerpoint:teacher=t.pth: the KD cells' teacher (default: the "
                        "dense checkpoint)")
    p.add_argument('--seed', type=int, default=None,
                   help="the fine-tunes' random seed (mmengine's randomness.seed; default: "
                        "a random one per run); a second seed goes into its own --work-dir")
    p.add_argument('--work-dir', default='work_dirs/ablate')
    p.add_argument('--device', help='cuda or cpu (default: cuda when available)')
    p.add_argument('--report-only', action='store_true',
                   help="run no cell: write the tables and plots of the cells recorded in "
                        "the work dir (for example while other parts still run into it)")
    add_debug_arg(p)
    args = p.parse_args()
    if any(not 0 < b <= 1 for b in args.budgets):
        p.error(f'budgets are fractions of the dense FLOPs in (0, 1], got {args.budgets}')
    if not 0 <= args.min_density < 1:
        p.error(f'--min-density is a weight density in [0, 1), got {args.min_density}')
    if args.epochs is not None and args.epochs < 0:
        p.error(f'--epochs must be >= 0, got {args.epochs}')
    if any('=' not in c for c in args.checkpoint):
        p.error(f'--checkpoint takes KEY=PATH, got {args.checkpoint}')
    return args


def report(abl: Ablation, detectors, work_dir: str) -> str:
    sections = []
    wall = read_wall_times(work_dir)
    for det in detectors:
        if not rows_of(abl.results, det):
            continue
        sections.append(f'## {det}\n\n{table_all(abl.results, det)}')
        for title, table in (('Tab. 1/2: DM3D against Ada3D at equal FLOPs',
                              table_tab12(abl.results, det)),
                             ('Tab. 6: DM3D on top of spatial pruning',
                              table_tab6(abl.results, det)),
                             ('Joint allocation against hand-set spatial + DM3D',
                              table_joint(abl.results, det, wall.get(det)))):
            if table:
                sections.append(f'### {det}: {title}\n\n{table}')
        plots = [plot_ap_vs_flops(abl.results, det, osp.join(work_dir, f'fig1_{det}.png')),
                 plot_layer_allocation(abl.results, det, osp.join(work_dir, f'fig4_{det}.png')),
                 plot_joint_frontier(abl.results, det, osp.join(work_dir, f'joint_{det}.png'),
                                     wall.get(det))]
        sections.append('plots: ' + ', '.join(p for p in plots if p))
        unreachable = [f'- {name}: {why}' for name, why in abl.unreachable.items()
                       if name.startswith(f'{det}:')]
        if unreachable:
            sections.append(f'{det}: budgets below the reachable floor (not run):\n'
                            + '\n'.join(unreachable))
    for title, table in (('Tab. 4: parts', table_parts(abl.results)),
                         ('Tab. 5: distortion curves', table_estimators(abl.results))):
        if table:
            sections.append(f'## {title}\n\n{table}')
    return '\n\n'.join(sections)


def main():
    args = parse_args()
    recorded = osp.join(args.work_dir, RESULTS_FILE)
    if args.report_only and not osp.isfile(recorded):  # checked before the work dir is made
        raise MissingFile(f'--report-only: no recorded cells in {recorded}')
    abl = Ablation(args.work_dir, args.data_root, epochs=args.epochs,
                   calib_frames=args.calib_frames, device=args.device,
                   checkpoints=dict(c.split('=', 1) for c in args.checkpoint),
                   spatial_grid={k: v for k, v in (('grid', args.spatial_grid),
                                                   ('sites', args.spatial_sites),
                                                   ('search', args.spatial_search),
                                                   ('objective', spatial_objective_of(args)),
                                                   ('rerank', spatial_rerank_of(args)))
                                 if v} or None,
                   seed=args.seed)
    for det in [] if args.report_only else args.detector:
        for study in args.study:
            spatial = None if args.spatial is None else \
                [s for s in args.spatial if s != 'none']
            extra = dict(fig1=dict(methods=args.methods, parts=args.parts,
                                   min_density=args.min_density),
                         tab6=dict(parts=args.parts, min_density=args.min_density),
                         joint=dict(parts=args.parts, min_density=args.min_density,
                                    series=args.series, recoveries=args.recovery))
            STUDIES[study](abl.run, det, args.budgets, spatial=spatial,
                           **extra.get(study, {}))
    text = report(abl, args.detector, args.work_dir)
    print('\n' + text)
    with open(osp.join(args.work_dir, 'ablation.md'), 'w') as f:
        f.write(text + '\n')
    print(f'\n[ablate] results: {abl.path}')


if __name__ == '__main__':
    run_cli(main)
