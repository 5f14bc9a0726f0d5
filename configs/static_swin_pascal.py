# Static multi-task Swin-T on PASCAL-Context (5 tasks), 512x512.
# Start from ImageNet Swin-T converted to mmseg's keys:
#   python tools/convert_swin_checkpoint.py swin_tiny_patch4_window7_224.pth \
#       pretrained/swin_tiny_mmseg.pth
_base_ = [
    '_base_/models/static_swin_mt.py', '_base_/datasets/pascal_context_mt.py',
    '_base_/schedules/schedule_adamw.py', '_base_/default_runtime.py'
]
# 300 epochs of 4,998 images at 32 images per iteration (4 GPUs x 8).
max_iters = 46875
warmup_iters = 3125
val_interval = 5000
model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained', checkpoint='pretrained/swin_tiny_mmseg.pth')),
    decode_head=dict(
        # Losses and weights: the TaskSpec defaults, AdaMTL's.
        tasks=dict(
            semseg=dict(out_channels=21),
            human_parts=dict(out_channels=7),
            saliency=dict(out_channels=1),
            normals=dict(out_channels=3),
            edge=dict(out_channels=1))))
# AdaMTL's rule lr = 5e-4 * batch / 512.
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
