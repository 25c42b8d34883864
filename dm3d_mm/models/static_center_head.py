"""CenterHead for datasets without box velocities (KITTI layout, our synthetic benchmark).

mmdet3d 1.4's CenterHead builds nuScenes targets: it unpacks (vx, vy) from every GT box and
concatenates a ``vel`` prediction into the regression it supervises, so 7-dof boxes fail in
``get_targets_single``. This head pads GT boxes with zero velocity and, when it has no
``vel`` branch, supervises a zero velocity placeholder that its code weights (last two 0)
leave out of the loss. Prediction is CenterHead's own (the coder decodes 7-dof boxes when
there is no ``vel`` map).
"""
from mmdet3d.models.dense_heads import CenterHead
from mmdet3d.registry import MODELS

from ..errors import UserError


@MODELS.register_module()
class StaticCenterHead(CenterHead):
    """mmdet3d's CenterHead for 7-dof boxes (no velocity): same arguments and state_dict.

    Use ``common_heads`` without ``vel``, ``bbox_coder.code_size=7`` and ten
    ``train_cfg.code_weights`` whose last two (velocity) are 0.
    """

    def get_targets_single(self, gt_instances_3d):
        boxes = gt_instances_3d.bboxes_3d
        if boxes.tensor.shape[1] == 7:
            gt_instances_3d = gt_instances_3d.clone()
            padded = boxes.tensor.new_zeros(len(boxes.tensor), 9)
            padded[:, :7] = boxes.tensor
            gt_instances_3d.bboxes_3d = type(boxes)(padded, box_dim=9)
        return super().get_targets_single(gt_instances_3d)

    def loss_by_feat(self, preds_dicts, batch_gt_instances_3d, *args, **kwargs):
        code_weights = self.train_cfg.get('code_weights', None)
        for task in preds_dicts:
            if 'vel' not in task[0]:
                if code_weights is None or any(code_weights[8:]):
                    raise UserError('StaticCenterHead without a vel branch needs ten '
                                     'train_cfg.code_weights whose last two are 0')
                reg = task[0]['reg']
                task[0]['vel'] = reg.new_zeros(reg.shape[0], 2, *reg.shape[2:])
        return super().loss_by_feat(preds_dicts, batch_gt_instances_3d, *args, **kwargs)
