"""Per-layer and per-part FLOPs tables (markdown and JSON-ready dicts)."""
from collections import OrderedDict
from typing import Dict, List

from torch import nn

from .counter import FlopsCounter


def layer_rows(counter: FlopsCounter) -> List[Dict]:
    """One row per prunable layer, means per frame."""
    n = max(counter.frames, 1)
    total = sum(st.macs() for st in counter.layers.values()) or 1
    rows = []
    for name, st in counter.layers.items():
        w = st.module.weight
        density = float((w != 0).float().mean())
        rows.append(OrderedDict(
            name=name, type=st.kind, part=st.part, calls=st.calls, sites_in=st.sites_in / n,
            sites_out=st.sites_out / n,
            pairs=float(st.pairs.sum()) / n, weight_density=density,
            dense_macs=st.dense_macs / n, effective_macs=st.macs() / n,
            bias_flops=st.bias_flops / n, share=st.macs() / total, bops=st.bops() / n,
            # weight zeros sit in dense kernels: their saving is counted, never skipped
            spatial_saving=st.spatial_saving,
            weight_saving='counted only' if density < 1 else 'none'))
    return rows


def part_totals(counter: FlopsCounter) -> Dict[str, Dict[str, float]]:
    n = max(counter.frames, 1)
    parts: Dict[str, Dict[str, float]] = OrderedDict()

    def row(part):
        return parts.setdefault(part, dict(dense_macs=0.0, effective_macs=0.0,
                                           bias_flops=0.0, norm_act_flops=0.0))
    for st in counter.layers.values():
        p = row(st.part)
        p['dense_macs'] += st.dense_macs / n
        p['effective_macs'] += st.macs() / n
        p['bias_flops'] += st.bias_flops / n
    for st in counter.aux.values():
        row(st.part)['norm_act_flops'] += st.flops / n
    return parts


def parameter_counts(model: nn.Module) -> Dict[str, int]:
    params = list(model.parameters())
    return dict(params=sum(p.numel() for p in params),
                nonzero_params=sum(int((p != 0).sum()) for p in params))


def flops_report(counter: FlopsCounter, model: nn.Module) -> Dict:
    rows = layer_rows(counter)
    return dict(frames=counter.frames, layers=rows, parts=part_totals(counter),
                total_dense_macs=sum(r['dense_macs'] for r in rows),
                total_effective_macs=sum(r['effective_macs'] for r in rows),
                total_bops=sum(r['bops'] for r in rows),
                **parameter_counts(model))


def _g(v):
    return f'{v / 1e9:.4f}'


PADDING_NOTE = ('dense convs count every output position x the whole kernel, zero-padded '
                'border taps included; sparse convs and sparse BEV convs count the real (input, '
                'output) pairs, so a tap that reads padding costs nothing there')


def markdown(report: Dict) -> str:
    lines = [f"Joint FLOPs, mean per frame over {report['frames']} frame(s); MACs in G.",
             'Saving: whether the spatial / weight sparsity of a layer skips work ("skipped") or '
             'is only counted ("counted only": a dense kernel computes it and is masked).',
             f"Binary layers: {report.get('total_bops', 0) / 1e9:.4f} G binary ops (BOPs), "
             'counted in the MACs as BOPs / 64.',
             '', '| layer | type | part | sites in | sites out | pairs | density | dense '
             'GMACs | effective GMACs | share | saving (spatial / weight) |',
             '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|']
    for r in report['layers']:
        lines.append(f"| {r['name']} | {r['type']} | {r['part']} | {r['sites_in']:.0f} | "
                     f"{r['sites_out']:.0f} | {r['pairs']:.0f} | {r['weight_density']:.3f} | "
                     f"{_g(r['dense_macs'])} | {_g(r['effective_macs'])} | "
                     f"{100 * r['share']:.1f}% | {r['spatial_saving']} / "
                     f"{r['weight_saving']} |")
    lines += ['', '| part | dense GMACs | effective GMACs | bias GFLOPs | norm+act GFLOPs |',
              '|---|---:|---:|---:|---:|']
    for part, p in report['parts'].items():
        lines.append(f"| {part} | {_g(p['dense_macs'])} | {_g(p['effective_macs'])} | "
                     f"{_g(p['bias_flops'])} | {_g(p['norm_act_flops'])} |")
    lines.append(f"| **total** | {_g(report['total_dense_macs'])} | "
                 f"{_g(report['total_effective_macs'])} | | |")
    lines += ['', f"parameters: {report['params']:,} ({report['nonzero_params']:,} non-zero)",
              '', PADDING_NOTE]
    return '\n'.join(lines)
