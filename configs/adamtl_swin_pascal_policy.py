# AdaMTL stage 2 of 3 on PASCAL-Context (4,998 training images): pre-train
# the policy to "keep everything" with the rest frozen (about 10 epochs).
#   stage 1: configs/static_swin_pascal.py
#   stage 2: this config
#   stage 3: configs/adamtl_swin_pascal.py
_base_ = [
    '_base_/models/adamtl_swin_mt_policy_pretrain.py',
    '_base_/datasets/pascal_context_mt.py',
    '_base_/schedules/adamtl_policy_pretrain.py',
    '_base_/default_runtime.py'
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
max_iters = 1560
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=max_iters // 5)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
load_from = 'work_dirs/static_swin_pascal/iter_46875.pth'
