# CenterPoint on the embedded synthetic KITTI benchmark, sized for a 2-core CPU.
# Inherits mmdet3d's own CenterPoint (voxel 0.1, SECOND encoder) config and overrides the
# point range, voxel size, channel widths, the three KITTI classes (one CenterHead task
# each, no velocity: StaticCenterHead), the KITTI-layout data and the schedule.
_base_ = ['mmdet3d::centerpoint/centerpoint_voxel01_second_secfpn_8xb4-cyclic-20e_nus-3d.py']
custom_imports = dict(imports=['dm3d_mm'], allow_failed_imports=False)

data_root = 'data/synth_kitti/'
class_names = ['Pedestrian', 'Cyclist', 'Car']
metainfo = dict(classes=class_names)
point_cloud_range = [0, -25.6, -3, 51.2, 25.6, 1]
voxel_size = [0.1, 0.1, 0.1]
out_size_factor = 8  # a 0.8 m BEV head grid, as mmdet3d's CenterPoint on nuScenes
post_range = [-10, -35.6, -10, 61.2, 35.6, 10]
backend_args = None
dataset_type = 'KittiDataset'

model = dict(
    data_preprocessor=dict(
        voxel_layer=dict(max_num_points=5, point_cloud_range=point_cloud_range,
                         voxel_size=voxel_size, max_voxels=(12000, 16000))),
    pts_voxel_encoder=dict(num_features=4),
    pts_middle_encoder=dict(
        _delete_=True,
        type='SparseEncoder',
        in_channels=4,
        sparse_shape=[41, 512, 512],
        order=('conv', 'norm', 'act'),
        base_channels=8,
        output_channels=64,
        encoder_channels=((8, ), (16, 16, 16), (32, 32, 32), (32, 32, 32))),
    pts_backbone=dict(in_channels=128, out_channels=[64, 128], layer_nums=[3, 3]),
    pts_neck=dict(in_channels=[64, 128], out_channels=[128, 128], upsample_strides=[1, 2]),
    pts_bbox_head=dict(
        type='StaticCenterHead',
        in_channels=256,
        tasks=[dict(num_class=1, class_names=['Pedestrian']),
               dict(num_class=1, class_names=['Cyclist']),
               dict(num_class=1, class_names=['Car'])],
        common_heads=dict(_delete_=True, reg=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2)),
        share_conv_channel=64,
        separate_head=dict(head_conv=32),
        bbox_coder=dict(post_center_range=post_range, max_num=100,
                        out_size_factor=out_size_factor,
                        voxel_size=voxel_size[:2], code_size=7,
                        pc_range=point_cloud_range[:2])),
    train_cfg=dict(pts=dict(grid_size=[512, 512, 40], voxel_size=voxel_size,
                            out_size_factor=out_size_factor, max_objs=100,
                            point_cloud_range=point_cloud_range,
                            code_weights=[1.0] * 8 + [0.0, 0.0])),
    test_cfg=dict(pts=dict(post_center_limit_range=post_range, max_per_img=100,
                           out_size_factor=out_size_factor, voxel_size=voxel_size[:2],
                           pc_range=point_cloud_range[:2], nms_type='rotate',
                           pre_max_size=1000, post_max_size=100, nms_thr=0.2)))

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
    dict(type='ObjectNoise', num_try=100, translation_std=[1.0, 1.0, 0.5],
         global_rot_range=[0.0, 0.0], rot_range=[-0.78539816, 0.78539816]),
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
    _delete_=True,
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='kitti_infos_train.pkl',
                 data_prefix=dict(pts='training/velodyne_reduced'), pipeline=train_pipeline,
                 modality=dict(use_lidar=True, use_camera=False), test_mode=False,
                 metainfo=metainfo, box_type_3d='LiDAR', backend_args=backend_args))
val_dataloader = dict(
    _delete_=True,
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='kitti_infos_val.pkl',
                 data_prefix=dict(pts='training/velodyne_reduced'), pipeline=test_pipeline,
                 modality=dict(use_lidar=True, use_camera=False), test_mode=True,
                 metainfo=metainfo, box_type_3d='LiDAR', pcd_limit_range=point_cloud_range,
                 backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='KittiMetric', ann_file=data_root + 'kitti_infos_val.pkl',
                     metric='bbox', pcd_limit_range=point_cloud_range, backend_args=backend_args)
test_evaluator = val_evaluator

# schedule: one cycle (warm-up to 10x lr, cosine down) over a short CPU run, as the demo SECOND
lr = 0.002
epoch_num = 12
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
