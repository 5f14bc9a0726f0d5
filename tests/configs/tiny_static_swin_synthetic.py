# A tiny version of configs/static_swin_synthetic.py for the test suite:
# 64x64 images, embed_dims 32, a few iterations, no worker processes.
_base_ = ['../../configs/static_swin_synthetic.py']
embed_dims = 32
crop_size = (64, 64)
model = dict(
    backbone=dict(
        pretrain_img_size=64,
        embed_dims=embed_dims,
        depths=[2, 2, 2, 2],
        num_heads=[1, 2, 4, 8],
        window_size=4,
        drop_path_rate=0.0),
    decode_head=dict(
        in_channels=[embed_dims * 2**i for i in range(4)],
        decoder=dict(channels=16)))
_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='MultiTaskResize', scale=(64, 64), ratio_range=(0.75, 1.25)),
    dict(type='MultiTaskRandomCrop', crop_size=(64, 64)),
    dict(type='MultiTaskRandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackMultiTaskInputs'),
]
_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiTaskResize', scale=(64, 64), keep_ratio=True),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='PackMultiTaskInputs'),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=_train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=_test_pipeline))
test_dataloader = val_dataloader
max_iters = 4
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(interval=2, max_keep_ckpts=3))
