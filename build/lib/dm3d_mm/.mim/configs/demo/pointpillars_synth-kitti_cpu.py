# PointPillars on the embedded synthetic KITTI benchmark, sized for a 2-core CPU.
# Inherits mmdet3d's own PointPillars KITTI config and overrides only range, pillar grid,
# channel widths, data paths and the schedule.
_base_ = ['mmdet3d::pointpillars/pointpillars_hv_secfpn_8xb6-160e_kitti-3d-3class.py']
custom_imports = dict(imports=['dm3d_mm'], allow_failed_imports=False)

data_root = 'data/synth_kitti/'
class_names = ['Pedestrian', 'Cyclist', 'Car']
metainfo = dict(classes=class_names)
point_cloud_range = [0, -25.6, -3, 51.2, 25.6, 1]
voxel_size = [0.2, 0.2, 4]
backend_args = None

model = dict(
    data_preprocessor=dict(
        voxel_layer=dict(point_cloud_range=point_cloud_range, voxel_size=voxel_size,
                         max_voxels=(12000, 16000))),
    voxel_encoder=dict(feat_channels=[32], point_cloud_range=point_cloud_range,
                       voxel_size=voxel_size),
    middle_encoder=dict(in_channels=32, output_shape=[256, 256]),
    backbone=dict(in_channels=32, layer_nums=[2, 3, 3], out_channels=[32, 64, 128]),
    neck=dict(in_channels=[32, 64, 128], out_channels=[64, 64, 64]),
    bbox_head=dict(
        in_channels=192,
        feat_channels=192,
        anchor_generator=dict(ranges=[
            [0, -25.6, -0.6, 51.2, 25.6, -0.6],
            [0, -25.6, -0.6, 51.2, 25.6, -0.6],
            [0, -25.6, -1.78, 51.2, 25.6, -1.78],
        ])))

db_sampler = dict(
    data_root=data_root,
    info_path=data_root + 'kitti_dbinfos_train.pkl',
    rate=1.0,
    prepare=dict(
        filter_by_difficulty=[-1],
        filter_by_min_points=dict(Car=5, Pedestrian=5, Cyclist=5)),
    classes=class_names,
    sample_groups=dict(Car=6, Pedestrian=4, Cyclist=4),
    points_loader=dict(
        type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4,
        backend_args=backend_args),
    backend_args=backend_args)
train_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4,
         backend_args=backend_args),
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True),
    dict(type='ObjectSample', db_sampler=db_sampler),
    dict(type='RandomFlip3D', flip_ratio_bev_horizontal=0.5),
    dict(type='GlobalRotScaleTrans', rot_range=[-0.78539816, 0.78539816],
         scale_ratio_range=[0.95, 1.05]),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='PointShuffle'),
    dict(type='Pack3DDetInputs', keys=['points', 'gt_bboxes_3d', 'gt_labels_3d'])
]
test_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4,
         backend_args=backend_args),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='Pack3DDetInputs', keys=['points'])
]
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    dataset=dict(
        times=1,
        dataset=dict(data_root=data_root, pipeline=train_pipeline, metainfo=metainfo)))
val_dataloader = dict(
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=test_pipeline, metainfo=metainfo,
                 pcd_limit_range=point_cloud_range))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'kitti_infos_val.pkl',
                     pcd_limit_range=point_cloud_range)
test_evaluator = val_evaluator

lr = 0.002
epoch_num = 16
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=epoch_num * 0.4, eta_min=lr * 10, begin=0,
         end=epoch_num * 0.4, by_epoch=True, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=epoch_num * 0.6, eta_min=lr * 1e-4,
         begin=epoch_num * 0.4, end=epoch_num, by_epoch=True, convert_to_iter_based=True),
    dict(type='CosineAnnealingMomentum', T_max=epoch_num * 0.4, eta_min=0.85 / 0.95,
         begin=0, end=epoch_num * 0.4, by_epoch=True, convert_to_iter_based=True),
    dict(type='CosineAnnealingMomentum', T_max=epoch_num * 0.6, eta_min=1,
         begin=epoch_num * 0.4, end=epoch_num, by_epoch=True, convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=epoch_num, val_interval=epoch_num)
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(type='CheckpointHook', interval=epoch_num))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
