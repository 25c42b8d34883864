"""The extractor interface, the automatic choice of extractor and the weighted distortion.

Box weighting: the box terms of a dense head exist at every anchor / BEV location, and almost
all of them are background whose boxes never become detections, yet they dominate ||dp_b||^2
(on the demo SECOND ~500x the class-confidence energy). With ``box_weighting='confidence'``
(the default) each location's box terms are scaled by sqrt of its own (detached) best class
confidence, so the distortion counts box changes where the head actually detects something.
``'none'`` is the paper's plain Eq. 2.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from ...errors import UnfitModel, UserError
from ...registry import HEAD_OUTPUTS
from .routes import detection_head, head_features

BOX_WEIGHTINGS = ('confidence', 'none')
# Class confidence only by default: on the demo SECOND, DM3D before fine-tuning reached val
# mAP (moderate, 3D AP40) 64.0 at 33 % FLOPs with lambda = (0, 1), against 61.0 with
# (0.03, 1), 57.0 with (0.12, 1) and 53.9 with (1, 1) (confidence-weighted boxes), and 47.7
# with the paper's plain (1, 1); at 25 % (0, 1) and (0.12, 1) were within 1.1 points.
DEFAULT_LAMBDAS = (0.0, 1.0)


def flat(tensors, batch: int, like: Optional[Tensor] = None) -> Tensor:
    """Concatenate per-frame flattened tensors into (batch, D)."""
    if not tensors:
        return torch.zeros(batch, 0, device=None if like is None else like.device)
    return torch.cat([t.reshape(batch, -1) for t in tensors], 1)


class HeadOutputs:
    """Base of the head-output extractors: (p_b, p_c) of one collated batch.

    Subclasses name the head classes they split (``head_types``, mmdet3d class names) and
    implement :meth:`split`.

    Args:
        box_weighting (str): ``'confidence'`` scales each location's box terms by sqrt of its
            detached best class confidence; ``'none'`` is the paper's plain output.
            Defaults to ``'confidence'``.
    """
    head_types: Tuple[str, ...] = ()

    def __init__(self, box_weighting: str = 'confidence'):
        if box_weighting not in BOX_WEIGHTINGS:
            raise UserError(f'box_weighting must be one of {BOX_WEIGHTINGS}, got '
                             f'{box_weighting!r}')
        self.box_weighting = box_weighting

    @property
    def weigh(self) -> bool:
        return self.box_weighting == 'confidence'

    def __call__(self, model: nn.Module, batch: dict) -> Tuple[Tensor, Tensor]:
        """Preprocess ``batch`` (eval mode) and return (p_b, p_c), each (frames, D)."""
        data = model.data_preprocessor(batch, training=False)
        samples = data['data_samples']
        head, feats = head_features(model, data['inputs'], [s.metainfo for s in samples])
        return self.split(head, head(feats), len(samples))

    def split(self, head: nn.Module, outs, batch: int) -> Tuple[Tensor, Tensor]:
        """(p_b, p_c) from the raw outputs of ``head``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f'{type(self).__name__}(box_weighting={self.box_weighting!r})'


def _registered():
    return [HEAD_OUTPUTS.get(name) for name in HEAD_OUTPUTS.module_dict]


def build_head_outputs(model: nn.Module, cfg: Optional[dict] = None,
                       box_weighting: str = 'confidence') -> HeadOutputs:
    """The extractor of ``cfg`` (a HEAD_OUTPUTS config) or, if None, the registered one whose
    head type is nearest in the model's head class hierarchy."""
    if cfg is not None:
        return HEAD_OUTPUTS.build(dict(cfg), default_args=dict(box_weighting=box_weighting))
    head = detection_head(model)
    mro = [c.__name__ for c in type(head).__mro__]
    best, rank = None, len(mro)
    for cls in _registered():
        for t in cls.head_types:
            if t in mro and mro.index(t) < rank:
                best, rank = cls, mro.index(t)
    if best is None:
        raise UnfitModel(
            f'no head-output extractor fits {type(model).__name__} with head '
            f'{type(head).__name__}; registered: {sorted(HEAD_OUTPUTS.module_dict)}. '
            "Register one (dm3d_mm.registry.HEAD_OUTPUTS) and set pruning.head_outputs")
    return best(box_weighting=box_weighting)


def weighted_distortion(ref: Tuple[Tensor, Tensor], new: Tuple[Tensor, Tensor],
                        lambdas=DEFAULT_LAMBDAS) -> Tensor:
    """Per-frame lambda_b ||p_b - p_b'||^2 + lambda_c ||p_c - p_c'||^2."""
    (b0, c0), (b1, c1) = ref, new
    return lambdas[0] * ((b1 - b0) ** 2).sum(1) + lambdas[1] * ((c1 - c0) ** 2).sum(1)
