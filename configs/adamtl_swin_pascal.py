# AdaMTL on PASCAL-Context (4,998 training images), stage 3 of 3: joint
# adaptive training with the budget loss (about 100 epochs).
#   python tools/train.py configs/static_swin_pascal.py
#   python tools/train.py configs/adamtl_swin_pascal_policy.py
#   python tools/train.py configs/adamtl_swin_pascal.py
_base_ = [
    '_base_/models/adamtl_swin_mt.py', '_base_/datasets/pascal_context_mt.py',
    '_base_/schedules/adamtl_joint.py', '_base_/default_runtime.py'
]
model = dict(
    decode_head=dict(
        # Losses and weights: the TaskSpec defaults, AdaMTL's.
        tasks=dict(
            semseg=dict(out_channels=21),
            human_parts=dict(out_channels=7),
            saliency=dict(out_channels=1),
            normals=dict(out_channels=3),
            edge=dict(out_channels=1))))
max_iters = 15625
warmup_iters = 780
val_interval = 2500
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
load_from = 'work_dirs/adamtl_swin_pascal_policy/iter_1560.pth'
