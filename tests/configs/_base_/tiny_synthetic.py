# The test suite's shrink of the shipped synthetic configs: 64x64 images,
# embed_dims 32, a few iterations, no worker processes. A tiny config
# inherits a shipped leaf and this file, and takes these with
# `key = {{_base_.tiny_key}}` (mmengine forbids one key in two bases).
_embed = 32
tiny_model = dict(
    backbone=dict(
        pretrain_img_size=64,
        embed_dims=_embed,
        depths=[2, 2, 2, 2],
        num_heads=[1, 2, 4, 8],
        window_size=4,
        drop_path_rate=0.0),
    decode_head=dict(
        in_channels=[_embed * 2**i for i in range(4)],
        decoder=dict(channels=16)))
tiny_train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadMultiTaskAnnotations'),
        dict(type='MultiTaskResize', scale=(64, 64),
             ratio_range=(0.75, 1.25)),
        dict(type='MultiTaskRandomCrop', crop_size=(64, 64)),
        dict(type='MultiTaskRandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackMultiTaskInputs'),
    ]))
tiny_test_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='MultiTaskResize', scale=(64, 64), keep_ratio=True),
        dict(type='LoadMultiTaskAnnotations'),
        dict(type='PackMultiTaskInputs'),
    ]))
tiny_param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)
]
tiny_train_cfg = dict(max_iters=4, val_interval=4)
tiny_default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(interval=2, max_keep_ckpts=3))
