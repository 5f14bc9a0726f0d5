# Static multi-task Swin-T on NYUD-v2 (4 tasks), 480x640.
# Start from ImageNet Swin-T converted to mmseg's keys (see
# static_swin_pascal.py).
_base_ = [
    '_base_/models/static_swin_mt.py', '_base_/datasets/nyud_mt.py',
    '_base_/schedules/schedule_adamw.py', '_base_/default_runtime.py'
]
# 300 epochs of 795 images at 32 images per iteration (4 GPUs x 8).
max_iters = 7500
warmup_iters = 500
val_interval = 1000
model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained', checkpoint='pretrained/swin_tiny_mmseg.pth')),
    decode_head=dict(
        # Losses and weights: the TaskSpec defaults, AdaMTL's.
        tasks=dict(
            semseg=dict(out_channels=40),
            normals=dict(out_channels=3),
            edge=dict(out_channels=1),
            depth=dict(out_channels=1))))
optim_wrapper = dict(optimizer=dict(lr=5e-4 * 32 / 512))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
        end=warmup_iters),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.0,
        by_epoch=False,
        begin=warmup_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
