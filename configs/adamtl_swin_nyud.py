# AdaMTL on NYUD-v2 (795 training images), stage 3 of 3: joint adaptive
# training with the budget loss (about 100 epochs).
#   python tools/train.py configs/static_swin_nyud.py
#   python tools/train.py configs/adamtl_swin_nyud_policy.py
#   python tools/train.py configs/adamtl_swin_nyud.py
_base_ = [
    '_base_/models/adamtl_swin_mt.py', '_base_/datasets/nyud_mt.py',
    '_base_/schedules/adamtl_joint.py', '_base_/default_runtime.py'
]
model = dict(
    decode_head=dict(
        # Losses and weights: the TaskSpec defaults, AdaMTL's.
        tasks=dict(
            semseg=dict(out_channels=40),
            normals=dict(out_channels=3),
            edge=dict(out_channels=1),
            depth=dict(out_channels=1))))
max_iters = 2500
warmup_iters = 125
val_interval = 500
# AdaMTL's rule lr = 5e-4 * batch / 512, 32 images per iteration.
optim_wrapper = dict(optimizer=dict(lr=5e-4 * 32 / 512))
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
default_hooks = dict(checkpoint=dict(interval=val_interval))
load_from = 'work_dirs/adamtl_swin_nyud_policy/iter_250.pth'
