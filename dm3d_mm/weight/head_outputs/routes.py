"""Which dense head a detector's y comes from, and the features that feed it.

- single-stage detectors (VoxelNet: SECOND, PointPillars; SASSD): ``extract_feat`` (test
  mode) then ``bbox_head``;
- MVX two-stage detectors (CenterPoint, SSN, MVXFasterRCNN): ``extract_feat`` gives (image,
  point) features; the point features feed ``pts_bbox_head``;
- two-stage detectors (Part-A2, PV-RCNN): ``extract_feat``'s ``neck_feats`` feed the
  ``rpn_head``. y is the first stage's dense output: the pruned parts (3D encoder, 2D
  backbone, neck) all feed it, and the RoI stage behind it depends on them only through
  proposals picked by NMS (not differentiable) and, for PV-RCNN, through point ops that mmcv
  implements for CUDA only.
"""
from typing import List, Tuple

from torch import nn

from ...errors import UnfitModel


def _route(model: nn.Module):
    from mmdet3d.models.detectors.mvx_two_stage import MVXTwoStageDetector
    from mmdet3d.models.detectors.single_stage import SingleStage3DDetector
    from mmdet3d.models.detectors.two_stage import TwoStage3DDetector
    if isinstance(model, MVXTwoStageDetector) and model.with_pts_bbox:
        return 'pts_bbox_head', lambda inputs, metas: model.extract_feat(inputs, metas)[1]
    if isinstance(model, TwoStage3DDetector) and getattr(model, 'rpn_head', None) is not None:
        return 'rpn_head', lambda inputs, metas: model.extract_feat(inputs)['neck_feats']
    if isinstance(model, SingleStage3DDetector) and getattr(model, 'bbox_head', None) \
            is not None:
        return 'bbox_head', lambda inputs, metas: model.extract_feat(inputs)
    raise UnfitModel(
        f'{type(model).__name__}: DM3D measures distortion on a dense detection head, and '
        'this detector is not a single-stage (bbox_head), MVX (pts_bbox_head) or two-stage '
        '(rpn_head) mmdet3d detector; give the pruner a head_outputs extractor for it')


def detection_head(model: nn.Module) -> nn.Module:
    """The dense head whose outputs are y."""
    return getattr(model, _route(model)[0])


def head_features(model: nn.Module, inputs: dict, metas: List[dict]) -> Tuple[nn.Module, object]:
    """(head, the features the head takes) for preprocessed inputs."""
    attr, features = _route(model)
    return getattr(model, attr), features(inputs, metas)
