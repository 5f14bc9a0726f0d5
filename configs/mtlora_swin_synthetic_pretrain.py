# The stand-in for a pretrained encoder on the synthetic data (which has no
# ImageNet Swin): the small Swin of the synthetic configs trained on one
# task, semseg, with MTLoRA's taps and decoder. MTLoRA and its references
# (configs/mtlora_swin_synthetic*.py) adapt it to all six tasks.
_base_ = [
    '_base_/models/mtlora_swin_mt.py', '_base_/datasets/synthetic_mt.py',
    '_base_/schedules/schedule_adamw.py', '_base_/default_runtime.py'
]
max_iters = 800
warmup_iters = 100
val_interval = 800
embed_dims = 48
taps = [embed_dims * 2, embed_dims * 4, embed_dims * 8, embed_dims * 8]
pretrain_tasks = ['semseg']
model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinEncoder',
        pretrain_img_size=128,
        embed_dims=embed_dims,
        depths=[2, 2, 2, 2],
        num_heads=[2, 4, 8, 16],
        window_size=4,
        drop_path_rate=0.1,
        out_after_downsample=True),
    decode_head=dict(
        in_channels=taps,
        decoder=dict(fuse_channels=[9, 18, 36, 72]),
        tasks=dict(semseg=dict(out_channels=6))),
    # Everything trains.
    train_cfg=dict(_delete_=True))
train_dataloader = dict(dataset=dict(tasks=pretrain_tasks))
val_dataloader = dict(dataset=dict(tasks=pretrain_tasks))
test_dataloader = val_dataloader
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
randomness = dict(seed=0)
