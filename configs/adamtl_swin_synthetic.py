# AdaMTL on the embedded synthetic dataset: stage 3 of 3, joint adaptive
# training of the whole model with the budget loss (the main config).
#   python tools/train.py configs/static_swin_synthetic.py
#   python tools/train.py configs/adamtl_swin_synthetic_policy.py
#   python tools/train.py configs/adamtl_swin_synthetic.py
# The policy is conditioned on the budget: one model serves every budget
# in the training range; test_cfg.budget (or model.set_budget) picks one.
_base_ = [
    '_base_/models/adamtl_swin_mt.py', '_base_/datasets/synthetic_mt.py',
    '_base_/schedules/adamtl_joint.py', '_base_/default_runtime.py'
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
max_iters = 500
warmup_iters = 50
val_interval = 500
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0,
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
load_from = 'work_dirs/adamtl_swin_synthetic_policy/iter_100.pth'
randomness = dict(seed=0)
