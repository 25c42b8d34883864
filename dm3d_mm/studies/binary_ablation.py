"""BiPointNet's ablation in the seed's order on the demo PointPillars: full precision, naive
sign binarisation, + EMA, + EMA + LSR. Every row is the same two-layer pillar encoder
fine-tuned on the same schedule from the full-precision demo checkpoint; a row's results
(per-class AP, storage of the packed export, BOPs and MAC equivalents) are saved as soon as
it finishes, and a row whose checkpoint exists is evaluated, not retrained."""
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.logging import print_log

from ..apis.config_utils import load_config
from ..apis.demo import evaluate_checkpoint
from ..apis.finetune import finetune_and_test
from ..apis.flops import count_on_dataset
from ..apis.kitti_summary import CLASSES, summarize_kitti_metrics
from ..apis.model import build_detector
from ..binary import BinaryLinear, save_packed_checkpoint
from ..cost.report import flops_report
from ..errors import UserError
from .results_file import ResultsFile

_CFG = 'configs/demo/pointpillars_synth-kitti_cpu_bipfn{}.py'
_STUDY_CFG = 'configs/demo/studies/pointpillars_synth-kitti_cpu_bipfn{}.py'  # the ablation's rows
# row key -> (the seed's row label, config)
ROWS: Dict[str, tuple] = OrderedDict([
    ('fp', ('full precision', _STUDY_CFG.format('_fp'))),
    ('sign', ('naive sign', _STUDY_CFG.format('_sign'))),
    ('ema', ('+ EMA', _STUDY_CFG.format('_ema'))),
    ('ema_lsr', ('+ EMA + LSR', _CFG.format(''))),
])


def binary_storage(model: torch.nn.Module, packed_path: str) -> Dict[str, float]:
    """Bytes of the binarised layers' weights as float32 and bit-packed, and of the
    detector's checkpoint written both ways: float32 (measured on a temporary file) and its
    packed export (written to ``packed_path``)."""
    layers = [m for m in model.modules() if isinstance(m, BinaryLinear) and m.enabled]
    fp_layers = sum(m.weight.numel() * m.weight.element_size() for m in layers)
    packed_layers = sum((m.weight.numel() + 7) // 8 for m in layers)
    packed_file = save_packed_checkpoint(model, packed_path)
    float_path = packed_path + '.float.tmp'
    torch.save(dict(state_dict=model.state_dict(), meta={}), float_path)
    float_file = osp.getsize(float_path)
    os.remove(float_path)
    return dict(binary_weight_bytes_fp32=fp_layers, binary_weight_bytes_packed=packed_layers,
                checkpoint_bytes_fp32=float_file, packed_checkpoint_bytes=packed_file,
                packed_checkpoint=packed_path)


class BinaryAblation:
    """Runs and reports the binarised-encoder ablation (see the module docstring).

    Args:
        work_dir (str): rows' work dirs (``<work_dir>/<row>``) and ``binary_ablation.json``.
        data_root (str): the synthetic benchmark.
        epochs (int, optional): fine-tune epochs (default: the configs' schedule).
        flops_frames (int): test frames the BOPs / MACs are averaged over. Defaults to 8.
        cfg_options (dict, optional): overrides for every row's config (e.g. small data
            subsets in tests).
        device (str): where FLOPs are counted. Defaults to 'cpu'.
    """

    def __init__(self, work_dir: str, data_root: str, epochs: Optional[int] = None,
                 flops_frames: int = 8, cfg_options: Optional[dict] = None,
                 device: str = 'cpu'):
        self.work_dir, self.data_root, self.epochs = work_dir, data_root, epochs
        self.flops_frames, self.cfg_options, self.device = flops_frames, cfg_options, device
        self.results_path = osp.join(work_dir, 'binary_ablation.json')
        self._file = ResultsFile(self.results_path)
        self.results = self._file.load()

    def run(self, rows: Sequence[str] = tuple(ROWS)) -> Dict:
        unknown = [r for r in rows if r not in ROWS]
        if unknown:
            raise UserError(f'unknown rows {unknown}; known: {list(ROWS)}')
        for row in rows:
            if row in self.results:
                print_log(f'binary ablation: {row} done, skipped', logger='current')
                continue
            self.results[row] = self.run_row(row)
            self._file.save(self.results)
        return self.results

    def run_row(self, row: str) -> Dict:
        label, config = ROWS[row]
        work_dir = osp.join(self.work_dir, row)
        cfg = load_config(config, cfg_options=self.cfg_options, data_root=self.data_root)
        epochs = self.epochs or cfg.train_cfg.max_epochs
        ckpt = osp.join(work_dir, f'epoch_{epochs}.pth')
        if osp.isfile(ckpt):  # trained before (or by tools/train.py): evaluate only
            metrics = evaluate_checkpoint(config, ckpt, self.data_root,
                                          osp.join(work_dir, 'test'), self.cfg_options)
            seconds = None
        else:
            out = finetune_and_test(config, self.data_root, work_dir, epochs=epochs,
                                    cfg_options=self.cfg_options)
            metrics, ckpt, seconds = out['metrics'], out['checkpoint'], out['train_seconds']
        model = build_detector(cfg, ckpt, device=self.device)
        report = flops_report(count_on_dataset(model, cfg, self.flops_frames), model)
        encoder = [r for r in report['layers'] if r['part'] == 'voxel encoder']
        return dict(label=label, config=config, checkpoint=ckpt, train_seconds=seconds,
                    epochs=epochs, ap_3d=summarize_kitti_metrics(metrics),
                    ap_bev=summarize_kitti_metrics(metrics, 'BEV'),
                    bops=report['total_bops'],
                    encoder_macs=sum(r['effective_macs'] for r in encoder),
                    detector_macs=report['total_effective_macs'],
                    **binary_storage(model, osp.join(work_dir, 'packed.pth')))


def _moderate(row: Dict, kind: str = 'ap_3d') -> List[Optional[float]]:
    return [(row[kind].get(c) or {}).get('moderate') for c in CLASSES]


def table(results: Dict) -> str:
    """The ablation as a markdown table, rows in the seed's order."""
    lines = ['| encoder | Car | Ped | Cyc | mAP | BEV mAP | binary weights (bytes, fp32 -> '
             'packed) | detector checkpoint (fp32 -> packed) | BOPs (G) | encoder MAC-eq (G) '
             '| detector MAC-eq (G) |', '|---|' + '---:|' * 10]

    def f(v):
        return '-' if v is None else f'{v:.1f}'
    for key in ROWS:
        r = results.get(key)
        if r is None:
            continue
        ap, bev = _moderate(r), _moderate(r, 'ap_bev')
        m = sum(ap) / len(ap) if None not in ap else None
        mb = sum(bev) / len(bev) if None not in bev else None
        w32, wp = r['binary_weight_bytes_fp32'], r['binary_weight_bytes_packed']
        weights = f'{w32} -> {wp} ({w32 / wp:.1f}x)' if wp else '- (none binarised)'
        sd, pk = r['checkpoint_bytes_fp32'], r['packed_checkpoint_bytes']
        lines.append(f"| {r['label']} | {' | '.join(f(v) for v in ap)} | {f(m)} | {f(mb)} | "
                     f'{weights} | {sd / 1e6:.2f} MB -> {pk / 1e6:.2f} MB | '
                     f"{r['bops'] / 1e9:.3f} | {r['encoder_macs'] / 1e9:.4f} | "
                     f"{r['detector_macs'] / 1e9:.3f} |")
    return '\n'.join(lines)
