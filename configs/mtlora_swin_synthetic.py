# MTLoRA on the synthetic data: the semseg-pretrained small Swin
# (configs/mtlora_swin_synthetic_pretrain.py) adapted to all six tasks with
# TA-LoRA (rank 8 here; `make demo` also runs 4 and 16) and TS-LoRA (rank
# 4), the base weights frozen. The references, trained the same 400
# iterations from the same checkpoint:
# configs/mtlora_swin_synthetic_{decoders,full}.py.
_base_ = [
    '_base_/models/mtlora_swin_mt.py', '_base_/datasets/synthetic_mt.py',
    '_base_/schedules/schedule_adamw.py', '_base_/default_runtime.py'
]
max_iters = 400
warmup_iters = 50
val_interval = 400
embed_dims = 48
taps = [embed_dims * 2, embed_dims * 4, embed_dims * 8, embed_dims * 8]
model = dict(
    backbone=dict(
        pretrain_img_size=128,
        embed_dims=embed_dims,
        depths=[2, 2, 2, 2],
        num_heads=[2, 4, 8, 16],
        window_size=4,
        drop_path_rate=0.1,
        lora=dict(r=8)),
    decode_head=dict(
        in_channels=taps,
        decoder=dict(fuse_channels=[9, 18, 36, 72]),
        tasks=dict(
            semseg=dict(out_channels=6),
            human_parts=dict(out_channels=7),
            saliency=dict(out_channels=1),
            normals=dict(out_channels=3),
            edge=dict(out_channels=1),
            depth=dict(out_channels=1))))
load_from = 'work_dirs/mtlora_swin_synthetic_pretrain/iter_800.pth'
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
