# AdaMTL stage 2 of 3 on the synthetic dataset: pre-train the policy to
# "keep everything" with the rest of the model frozen.
#   stage 1: configs/static_swin_synthetic.py        (static multi-task)
#   stage 2: this config                              (policy pre-training)
#   stage 3: configs/adamtl_swin_synthetic.py        (joint adaptive)
# Each stage starts from the previous one's last checkpoint (load_from).
_base_ = [
    '_base_/models/adamtl_swin_mt_policy_pretrain.py',
    '_base_/datasets/synthetic_mt.py',
    '_base_/schedules/adamtl_policy_pretrain.py',
    '_base_/default_runtime.py'
]
embed_dims = 48
# A small Swin from scratch (no ImageNet encoder for the synthetic data).
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
max_iters = 100
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20), checkpoint=dict(interval=max_iters))
load_from = 'work_dirs/static_swin_synthetic/iter_800.pth'
randomness = dict(seed=0)
