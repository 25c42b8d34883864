"""Which layers of a detector are pruned: by part, by name pattern, head outputs on request."""
import fnmatch
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from torch import nn

from ..cost.counter import PARTS
from ..cost.layouts import PRUNABLE
from ..errors import UserError

# user-facing part keys (the detector attributes, pts_ variants included)
PART_KEYS = tuple(dict.fromkeys(k.replace('pts_', '') for k in PARTS))
# final prediction convs of mmdet3d's heads: pruned only when asked
HEAD_OUTPUT_SUFFIXES = ('conv_cls', 'conv_reg', 'conv_dir_cls', 'conv_dir')


def _part_key(name: str) -> str:
    return name.split('.')[0].replace('pts_', '')


def _is_head_output(name: str, module: nn.Module, model: nn.Module) -> bool:
    if any(name.endswith(s) for s in HEAD_OUTPUT_SUFFIXES):
        return True
    # CenterHead's SeparateHead: the last conv of each task branch (heatmap, reg, ...)
    parent_name, _, leaf = name.rpartition('.')
    if 'task_heads' in name and leaf.isdigit():
        parent = model.get_submodule(parent_name)
        convs = [n for n, m in parent.named_children() if isinstance(m, PRUNABLE)]
        return bool(convs) and convs[-1] == leaf
    return False


def find_prunable_layers(model: nn.Module, parts: Optional[Sequence[str]] = None,
                         include: Optional[Iterable[str]] = None,
                         exclude: Optional[Iterable[str]] = None,
                         include_head_outputs: bool = False) -> Dict[str, nn.Module]:
    """Prunable layers (spconv convs, Conv1d/2d/3d, ConvTranspose, Linear) in forward order.

    parts: detector parts to prune (``middle_encoder``, ``backbone``, ``neck``,
        ``bbox_head``, ``voxel_encoder``); None means all of them.
    include / exclude: fnmatch patterns on layer names, applied after ``parts``.
    """
    present = {_part_key(n) for n, _ in model.named_children()}
    if parts is not None:
        parts = list(parts)
        unknown = [p for p in parts if p.replace('pts_', '') not in PART_KEYS]
        if unknown:
            raise UserError(f'unknown part(s) {unknown}; valid parts: {list(PART_KEYS)}')
        missing = [p for p in parts if p.replace('pts_', '') not in present]
        if missing:
            raise UserError(f'part(s) {missing} not in this model; it has '
                             f'{sorted(present & set(PART_KEYS))}')
        wanted = {p.replace('pts_', '') for p in parts}
    else:
        wanted = set(PART_KEYS)
    layers = OrderedDict()
    # spatial-pruning predictors decide *where* to compute and binarised layers hold signs:
    # their weights are not pruned
    skip = [n + '.' for n, m in model.named_modules() if getattr(m, 'dm3d_skip_pruning', False)]
    for name, module in model.named_modules():
        if not isinstance(module, PRUNABLE) or _part_key(name) not in wanted:
            continue
        if getattr(module, 'dm3d_skip_pruning', False) or \
                any(name.startswith(prefix) for prefix in skip):
            continue
        if not include_head_outputs and _is_head_output(name, module, model):
            continue
        layers[name] = module
    for pattern_set, keep in ((include, True), (exclude, False)):
        if not pattern_set:
            continue
        for pat in pattern_set:
            hits = [n for n in layers if fnmatch.fnmatch(n, pat)]
            if not hits:
                raise UserError(f'pattern {pat!r} matches no prunable layer; examples: '
                                 f'{list(layers)[:5]}')
        if keep:
            layers = OrderedDict((n, m) for n, m in layers.items()
                                 if any(fnmatch.fnmatch(n, p) for p in pattern_set))
        else:
            layers = OrderedDict((n, m) for n, m in layers.items()
                                 if not any(fnmatch.fnmatch(n, p) for p in pattern_set))
    if not layers:
        raise UserError('no prunable layer selected: check parts / include / exclude')
    return layers


NOT_RUN = 'never ran in the inference forward (training-only or second-stage layers)'
NO_INFLUENCE = 'do not reach the measured head outputs (not in their autograd graph)'


def settle_selection(candidates: Dict[str, nn.Module], ran: Iterable[str],
                     influencing: Iterable[str], parts: Optional[Sequence[str]] = None,
                     include: Optional[Iterable[str]] = None, **_) -> Tuple[
                         Dict[str, nn.Module], Dict[str, List[str]]]:
    """Narrow a selection to the layers the counted forward ran and whose weights reach y,
    in the order the forward ran them (network order, not registration order).

    Left-out layers are returned by reason. Asking for them explicitly stays an error: an
    ``include`` pattern naming one layer (no wildcard) that is left out, a pattern or a
    ``part`` left with no layer at all.
    """
    order = {n: i for i, n in enumerate(ran)}
    ran, influencing = set(ran), set(influencing)
    left_out = {NOT_RUN: [n for n in candidates if n not in ran],
                NO_INFLUENCE: [n for n in candidates if n in ran and n not in influencing]}
    dropped = {n: reason for reason, names in left_out.items() for n in names}
    layers = OrderedDict(sorted(((n, m) for n, m in candidates.items() if n not in dropped),
                                key=lambda item: order[item[0]]))
    for pat in include or ():
        hits = [n for n in candidates if fnmatch.fnmatch(n, pat)]
        if not any(n in layers for n in hits) or (pat in dropped):
            name = pat if pat in dropped else hits[0]
            raise UserError(f'include pattern {pat!r} selects layers that cannot be pruned: '
                             f'{name} {dropped[name]}')
    for part in parts or ():
        key = part.replace('pts_', '')
        if not any(_part_key(n) == key for n in layers):
            reasons = sorted({dropped[n] for n in candidates if _part_key(n) == key})
            raise UserError(f'part {part!r} has no layer that can be pruned: its layers '
                             f'{"; ".join(reasons) or "are excluded"}')
    if not layers:
        raise UserError('no selected layer both runs in the inference forward and reaches '
                         'the head outputs: check parts / include / exclude')
    return layers, {k: v for k, v in left_out.items() if v}
