# Static multi-task Swin (small, from scratch) on the embedded synthetic
# dataset: the baseline `make demo` trains on a 2-core CPU.
_base_ = [
    '_base_/models/static_swin_mt.py', '_base_/datasets/synthetic_mt.py',
    '_base_/schedules/schedule_adamw.py', '_base_/default_runtime.py'
]
max_iters = 800
warmup_iters = 100
val_interval = 800
embed_dims = 48
model = dict(
    backbone=dict(
        pretrain_img_size=128,
        embed_dims=embed_dims,
        depths=[2, 2, 2, 2],
        num_heads=[2, 4, 8, 16],
        window_size=4,
        drop_path_rate=0.1),
    decode_head=dict(
        in_channels=[embed_dims * 2**i for i in range(4)],
        decoder=dict(channels=32),
        # Losses and weights: the TaskSpec defaults, AdaMTL's.
        tasks=dict(
            semseg=dict(out_channels=6),
            human_parts=dict(out_channels=7),
            saliency=dict(out_channels=1),
            normals=dict(out_channels=3),
            edge=dict(out_channels=1),
            depth=dict(out_channels=1))))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
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
default_hooks = dict(
    logger=dict(interval=50), checkpoint=dict(interval=val_interval))
# Seeded so that `make demo` reproduces the README's table.
randomness = dict(seed=0)
