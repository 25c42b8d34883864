"""Ada3DSparseEncoder: SparseEncoder that drops the voxels of unimportant BEV columns.

A BEVImportancePredictor scores the BEV cells from the encoder's input voxels. At every
location named in ``keep_ratios`` ('input', 'stage1'..'stageN' = after that encoder stage,
'bev' = the output BEV map) the top fraction of that location's non-empty cells is kept
and the rest dropped: voxels are removed from the sparse tensor (later convs never see
them), BEV pixels are zeroed (SparseBEVConv2d + SPBN2d in the 2D backbone keep them zero).
"""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmdet3d.models.middle_encoders import SparseEncoder
from mmdet3d.registry import MODELS

from ..errors import UserError
from .active_pixels import active_index, active_pixels, note_nonzero, remember_count
from .backends import require_backend
from .importance import keep_mask, kept_count
from .spss_encoder import empty_bev, encode
from .stage_memo import StageMemo


def _importance_at(imp: torch.Tensor, hw) -> torch.Tensor:
    """The (B, 1, H, W) importance map resampled to another BEV grid (max over merged cells)."""
    if tuple(imp.shape[-2:]) == tuple(hw):
        return imp
    if hw[0] <= imp.shape[-2] and hw[1] <= imp.shape[-1]:
        return F.adaptive_max_pool2d(imp, hw)
    return F.interpolate(imp, size=tuple(hw), mode='nearest')


def column_keep(indices: torch.Tensor, spatial_hw, imp: torch.Tensor,
                keep_ratio: float, batch_size: Optional[int] = None,
                one_per_column: bool = False) -> torch.Tensor:
    """Per voxel row: whether its BEV column is among the kept top ``keep_ratio`` fraction
    of the sample's non-empty columns, ranked by ``imp`` resampled to ``spatial_hw``
    (``batch_size``: the samples, if known; see :func:`keep_mask`). ``one_per_column``: the
    rows are distinct columns in row-major order already (BEV pixels). Otherwise the voxels
    are sorted by column and the first of each column is ranked for it (the order and ties
    of the distinct columns, without ``unique``'s wait for their count)."""
    n = len(indices)
    if n == 0 or keep_ratio >= 1:
        return torch.ones(n, dtype=torch.bool, device=indices.device)
    h, w = int(spatial_hw[0]), int(spatial_hw[1])
    grid = _importance_at(imp.detach(), (h, w)).reshape(-1)
    col = (indices[:, 0].long() * h + indices[:, 2].long()) * w + indices[:, 3].long()
    first = None
    if not one_per_column:
        col, order = torch.sort(col)
        first = torch.ones(n, dtype=torch.bool, device=col.device)
        first[1:] = col[1:] != col[:-1]
    keep = keep_mask(grid[col], torch.div(col, h * w, rounding_mode='floor'), 1.0 - keep_ratio,
                     batch_size, ranked=first)
    if one_per_column:
        return keep
    # every voxel takes its column's first voxel's decision
    at = torch.arange(n, device=col.device)
    keep = keep[torch.where(first, at, 0).cummax(0).values]
    return torch.empty_like(keep).index_put_((order, ), keep)


@MODELS.register_module()
class Ada3DSparseEncoder(SparseEncoder):
    """SparseEncoder + Ada3D BEV-column pruning (see the module docstring).

    Args:
        *args: SparseEncoder's arguments.
        predictor (dict, optional): BEVImportancePredictor config (its in_channels are the
            encoder's). Defaults to the predictor's defaults.
        keep_ratios (dict, optional): location ('input', 'stage1'..'stageN', 'bev') ->
            fraction of the non-empty BEV cells kept there, in (0, 1].
            Defaults to dict(input=0.5, bev=0.5).
        backend (str): sparse-conv library; 'spconv'. Defaults to 'spconv'.
        **kwargs: SparseEncoder's keyword arguments.
    """

    def __init__(self, *args, predictor: Optional[dict] = None,
                 keep_ratios: Optional[Dict[str, float]] = None, backend: str = 'spconv',
                 **kwargs):
        require_backend(backend)
        super().__init__(*args, **kwargs)
        predictor = dict(type='BEVImportancePredictor', in_channels=self.in_channels,
                         **(predictor or {}))
        self.predictor = MODELS.build(predictor)
        self.keep_ratios = dict(keep_ratios or dict(input=0.5, bev=0.5))
        valid = self.locations()
        for loc, r in self.keep_ratios.items():
            if loc not in valid:
                raise UserError(f'unknown keep_ratios location {loc!r}; use {valid}')
            if not 0 < r <= 1:
                raise UserError(f'keep ratio at {loc!r} must be in (0, 1], got {r}')
        self.last_logits = None  # for the importance loss (Ada3DImportanceLoss)
        self.last_bev_mask = None
        self.stage_memo: Optional[StageMemo] = None  # set for forwards that share stages

    def locations(self) -> List[str]:
        """Every location this encoder can drop columns at, in the order it runs them."""
        return ['input', *(f'stage{i + 1}' for i in range(self.stage_num)), 'bev']

    def stage_settings(self, i: int) -> tuple:
        """The spatial settings acting in stage ``i``: the keep ratio after it."""
        return (self.keep_ratios.get(f'stage{i + 1}'), )

    def _prune_tensor(self, x, loc, imp):
        r = self.keep_ratios.get(loc)
        if r is None or r >= 1:
            return x
        keep = column_keep(x.indices, x.spatial_shape[1:], imp, r, x.batch_size)
        rows = torch.nonzero(keep).flatten()  # the one wait: the kept count sizes the rest
        if len(rows) == len(keep):
            return x
        from spconv.pytorch import SparseConvTensor
        return SparseConvTensor(x.features.index_select(0, rows), x.indices.index_select(0, rows),
                                x.spatial_shape, x.batch_size)  # fresh rulebooks: new voxel set

    def forward(self, voxel_features, coors, batch_size):
        # mmdet3d's CenterPoint passes a 0-d tensor: one read here, not one at each use
        batch_size = int(batch_size)
        logits = self.predictor(voxel_features, coors, batch_size, self.sparse_shape)
        self.last_logits = logits
        imp = torch.sigmoid(logits)
        if self.keep_ratios.get('input', 1.0) < 1:
            keep = column_keep(coors, self.sparse_shape[1:], imp, self.keep_ratios['input'],
                               batch_size)
            rows = torch.nonzero(keep).flatten()  # one wait for both selections
            voxel_features, coors = voxel_features.index_select(0, rows), \
                coors.index_select(0, rows)
        if coors.shape[0] == 0:
            self.last_bev_mask = None
            return empty_bev(self, voxel_features, batch_size)
        encoded = encode(self, voxel_features, coors, batch_size,
                         lambda i, x: self._prune_tensor(x, f'stage{i + 1}', imp),
                         memo=self.stage_memo, reads=(imp, ))
        out, encode_features = encoded if self.return_middle_feats else (encoded, None)
        n, _, h, w = out.shape
        if 'bev' in self.keep_ratios:
            active = (out != 0).any(1)
            b, y, x = active_pixels(active)  # the one wait: the active count
            keep = column_keep(torch.stack([b, b * 0, y, x], 1), (h, w), imp,
                               self.keep_ratios['bev'], n, one_per_column=True)
            mask = torch.zeros(n * h * w, dtype=torch.bool, device=out.device)
            mask = mask.index_put_((active_index(active), ), keep).view(n, h, w)
            kept = kept_count(len(b), 1.0 - self.keep_ratios['bev'], n)
            if kept is not None:
                remember_count(mask, kept)
            # the kept pixels were non-zero, so ``mask`` is the new map's non-zero mask
            out = note_nonzero(out * mask[:, None].to(out.dtype), mask)
            self.last_bev_mask = mask
        return (out, encode_features) if self.return_middle_feats else out
