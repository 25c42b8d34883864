"""CenterPoint's CenterHead: per task, a class heatmap and regression maps."""
from typing import Tuple

from torch import Tensor, nn

from ...registry import HEAD_OUTPUTS
from .base import HeadOutputs, flat


@HEAD_OUTPUTS.register_module()
class CenterHeadOutputs(HeadOutputs):
    """CenterHead outputs: per task a dict of (B, C, H, W) maps. p_c = sigmoid(heatmap);
    p_b = the regression maps (reg, height, dim, rot, and vel / iou where the head has
    them), each location's scaled by sqrt of the task's best heatmap confidence there when
    ``box_weighting='confidence'``.

    Args:
        box_weighting (str): see :class:`HeadOutputs`. Defaults to ``'confidence'``.
    """
    head_types = ('CenterHead', )

    def split(self, head: nn.Module, outs, batch: int) -> Tuple[Tensor, Tensor]:
        boxes, scores = [], []
        for group in outs:  # per task (mmdet3d's multi_apply), then per feature level
            for task in group:
                heat = task['heatmap'].sigmoid()
                scores.append(heat)
                conf = heat.detach().amax(1, keepdim=True).sqrt()
                for key in sorted(k for k in task if k != 'heatmap'):
                    boxes.append(task[key] * conf if self.weigh else task[key])
        return flat(boxes, batch, scores[0]), flat(scores, batch, scores[0])
