"""The main demo's summary: per demo detector, dense, DM3D alone, each spatial model alone,
the spatial model at its trained keep ratios + DM3D (hand-set) and the joint allocation at
one budget, side by side: joint GMACs and their ratio to dense, whole-detector wall time as
a ratio to dense measured in the same run, val mAP as pruned (no fine-tune) and, where a
fine-tuned checkpoint of the joint cell ships, fine-tuned; and the frontier as a PNG.

Every row is an :class:`~dm3d_mm.studies.ablation.Ablation` cell run without fine-tuning
(``epochs=0``): pruned by the tools' own pruner, counted afresh, evaluated on the whole val
split, timed by :func:`~dm3d_mm.studies.frontier_time.time_cells`.
"""
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from ..apis.demo import evaluate_checkpoint
from ..apis.kitti_summary import moderate_map, summarize_kitti_metrics
from .ablation import Ablation
from .cells import DETECTORS, Cell
from .frontier_time import time_cells
from .report import SAVING, _pyplot, _save


@dataclass
class DemoDetector:
    """One detector's rows of the summary.

    Args:
        detector (str): a key of ``studies.cells.DETECTORS``.
        title (str): its name in the table.
        budget (float): the hand-set and joint rows' budget, a fraction of the dense
            detector's joint FLOPs.
        dm3d_budget (float): DM3D alone's budget (it cannot reach ``budget`` where its
            unpruned layers cost more).
        spatial (Sequence[str]): its spatial models shown alone.
        joint_on (str): the spatial model of the hand-set and joint rows.
        spatial_grid (dict): the joint cells' ``spatial=`` section (grid, ...).
        calib_frames (int): the pruning's calibration frames.
        epochs (int): the fine-tune of the shipped joint checkpoint (``make checkpoints``).
        teacher (str, optional): the config of its dense teacher (trained by ``make
            checkpoints``); None: plain fine-tuning.
        finetuned (str, optional): the shipped fine-tuned checkpoint of the joint cell.
            Defaults to :func:`joint_checkpoint_path`'s.
    """
    detector: str
    title: str
    budget: float
    dm3d_budget: float
    spatial: Sequence[str]
    joint_on: str
    spatial_grid: Dict = field(default_factory=dict)
    calib_frames: int = 8
    epochs: int = 2
    teacher: Optional[str] = None
    finetuned: Optional[str] = None

    def __post_init__(self):
        if self.finetuned is None:
            self.finetuned = joint_checkpoint_path(self.detector, self.joint_on, self.budget)

    def cells(self, spatial_ratio: Dict[str, float]) -> List[Cell]:
        """Its cells; ``spatial_ratio``: each spatial model's FLOPs / dense (the hand-set
        cell prunes ``joint_on`` to the same joint FLOPs as the joint cell)."""
        det = self.detector
        hand = round(self.budget / spatial_ratio[self.joint_on], 3)
        return [Cell(det), Cell(det, budget=self.dm3d_budget),
                *[Cell(det, spatial=s) for s in self.spatial],
                Cell(det, spatial=self.joint_on, budget=hand),
                Cell(det, spatial=self.joint_on, budget=self.budget, joint=True)]


def joint_checkpoint_path(detector: str, spatial: str, budget: float,
                          out_dir: str = 'checkpoints') -> str:
    """Where the fine-tuned joint checkpoint of a demo detector ships:
    ``<spatial checkpoint>_joint<percent>_ft.pth``."""
    base = osp.splitext(osp.basename(DETECTORS[detector].spatial[spatial].checkpoint))[0]
    return osp.join(out_dir, f'{base}_joint{round(100 * budget)}_ft.pth')


#: the main demo's rows: SECOND's joint at 0.1 of the dense FLOPs (its lossless point, plain
#: 2-epoch fine-tune), CenterPoint's at 0.2 (5x, on the Ada3D model trained with a dense
#: teacher, fine-tuned with the fair control as the teacher; not lossless; the Ada3D model
#: trained without one shown alone beside it), each with the fine-tune of its shipped joint
#: checkpoint
DEMO_DETECTORS = (
    DemoDetector('second', 'SECOND', budget=0.1, dm3d_budget=0.5,
                 spatial=('spss50_fg-margin', 'ada3d'), joint_on='ada3d', calib_frames=8,
                 epochs=2),
    DemoDetector('centerpoint', 'CenterPoint', budget=0.2, dm3d_budget=0.5,
                 spatial=('spss50_fg-margin', 'ada3d_sparse-head', 'ada3d-kd_sparse-head'),
                 joint_on='ada3d-kd_sparse-head', spatial_grid=dict(grid=(1.0, 0.5)),
                 calib_frames=4, epochs=6,
                 teacher='configs/demo/studies/centerpoint_synth-kitti_cpu_ada3d_control.py'),
)


def label_of(row: Dict) -> str:
    """A row's method in the table's words."""
    kind = row['kind']
    if kind == 'dense':
        return 'dense'
    if kind == 'weight':
        return f"DM3D alone ({row['budget']:g})"
    if kind == 'spatial':
        return f"{row['spatial']} alone"
    if kind == 'spatial + weight':
        return f"{row['spatial']} (trained ratios) + DM3D, hand-set"
    return f"**joint** on {row['spatial']} ({row['budget']:g} of dense)"


def run_detector(spec: DemoDetector, data_root: str, work_dir: str, frames: int = 4,
                 repeats: int = 3, log=print, **ablation_args) -> List[Dict]:
    """The detector's rows: every cell run (pruned, counted, evaluated) and timed side by
    side; each row gets ``label``, ``wall`` (whole / dense) and, for the joint cell with a
    shipped fine-tuned checkpoint, ``mAP_ft``.

    Args:
        spec (DemoDetector): the detector's rows.
        data_root (str): the benchmark.
        work_dir (str): where the cells write (one Ablation work dir per detector).
        frames (int): val frames timed. Defaults to 4.
        repeats (int): timed passes (best of). Defaults to 3.
        log (Callable): progress lines. Defaults to print.
        **ablation_args: more arguments of the :class:`Ablation` (``checkpoint_root``,
            ``cfg_options``, ``flops_frames``).
    """
    abl = Ablation(osp.join(work_dir, spec.detector), data_root, epochs=0,
                   calib_frames=spec.calib_frames, spatial_grid=spec.spatial_grid or None,
                   **ablation_args)
    alone = {s: abl.run(Cell(spec.detector, spatial=s), log) for s in
             {*spec.spatial, spec.joint_on}}
    rows = []
    for cell in spec.cells({s: r['flops_ratio'] for s, r in alone.items() if r}):
        row = abl.run(cell, log)
        if row is not None:
            rows.append(dict(row, label=label_of(row)))
    timed = time_cells(abl, spec.detector, frames, repeats)
    times = timed['times']
    for row in rows:
        row['wall'] = times[row['name']]['whole'] / times[timed['reference']]['whole']
    joint = next(r for r in rows if r['kind'] == 'joint')
    if spec.finetuned and osp.isfile(spec.finetuned):
        config, _ = abl.model_files(joint['name'])
        ap = summarize_kitti_metrics(evaluate_checkpoint(
            config, spec.finetuned, data_root, osp.join(work_dir, spec.detector, 'joint_ft')))
        joint['mAP_ft'], joint['checkpoint_ft'] = moderate_map(ap), spec.finetuned
    return rows


def summary_table(sections: Dict[str, List[Dict]]) -> str:
    """Markdown: per detector (``sections``: title -> rows) each row's joint GMACs and
    ratio to dense, wall time / dense, keep ratios, mAP as pruned and fine-tuned."""
    lines = ['| detector | method | joint GMACs | FLOPs / dense | saving | wall / dense | '
             'keep ratios | mAP (no fine-tune) | mAP fine-tuned |',
             '|---|---|---:|---:|---|---:|---|---:|---:|']
    for title, rows in sections.items():
        for r in rows:
            ratios = (r.get('joint_choice') or {}).get('keep_ratios') or {}
            keep = ', '.join(f"{k.split('.')[-1]} {v:g}" for k, v in ratios.items())
            ft = f"{r['mAP_ft']:.1f}" if r.get('mAP_ft') is not None else '-'
            lines.append(f"| {title} | {r['label']} | {r['gmacs']:.3f} | "
                         f"{r['flops_ratio']:.3f} | {SAVING[r['kind']]} | {r['wall']:.3f} | "
                         f"{keep or '-'} | {r['mAP']:.1f} | {ft} |")
    return '\n'.join(lines)


def plot_summary(sections: Dict[str, List[Dict]], path: str) -> str:
    """mAP against joint FLOPs / dense (log) and against wall time / dense, a marker per
    method, a colour per detector; the fine-tuned joint point where there is one."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.get_cmap('tab10').colors
    markers = {'dense': 'o', 'weight': 's', 'spatial': '^', 'spatial + weight': 'D',
               'joint': '*'}
    for ax, key, xlabel in ((axes[0], 'flops_ratio', 'joint FLOPs / dense (log)'),
                            (axes[1], 'wall', 'whole-detector wall time / dense')):
        for i, (title, rows) in enumerate(sections.items()):
            for r in rows:
                ax.plot(r[key], r['mAP'], marker=markers[r['kind']], linestyle='none',
                        color=colours[i], markersize=11 if r['kind'] == 'joint' else 6,
                        label=f"{title}: {r['label'].replace('**', '')}")
                if r.get('mAP_ft') is not None:
                    ax.plot(r[key], r['mAP_ft'], marker='*', markersize=11,
                            markerfacecolor='none', color=colours[i], linestyle='none',
                            label=f'{title}: joint, fine-tuned')
        if key == 'flops_ratio':
            ax.set_xscale('log')
        ax.set_xlabel(xlabel)
        ax.set_ylabel('val mAP (moderate 3D AP40)')
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=6, loc='center left', bbox_to_anchor=(1.02, 0.5))
    axes[0].set_title('accuracy against joint FLOPs')
    axes[1].set_title('accuracy against measured time (same run)')
    return _save(plt, fig, path)
