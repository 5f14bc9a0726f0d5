# AdaMTL stage 2 of 3 on NYUD-v2 (795 training images): pre-train the policy
# to "keep everything" with the rest of the model frozen (about 10 epochs).
#   stage 1: configs/static_swin_nyud.py
#   stage 2: this config
#   stage 3: configs/adamtl_swin_nyud.py
_base_ = [
    '_base_/models/adamtl_swin_mt_policy_pretrain.py',
    '_base_/datasets/nyud_mt.py',
    '_base_/schedules/adamtl_policy_pretrain.py',
    '_base_/default_runtime.py'
]
model = dict(
    decode_head=dict(
        # Losses and weights: the TaskSpec defaults, AdaMTL's.
        tasks=dict(
            semseg=dict(out_channels=40),
            normals=dict(out_channels=3),
            edge=dict(out_channels=1),
            depth=dict(out_channels=1))))
max_iters = 250
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=max_iters // 5)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
load_from = 'work_dirs/static_swin_nyud/iter_7500.pth'
