# The paper's setting, stage 2 of 3: the policy pre-trained to keep
# everything (about 10 epochs), the rest frozen.
_base_ = [
    '../_base_/models/adamtl_swin_mt_paper_policy_pretrain.py',
    '../_base_/datasets/pascal_context_mt_224.py',
    '../_base_/schedules/adamtl_paper_policy_pretrain.py',
    '../_base_/default_runtime.py'
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
load_from = 'work_dirs/static_swin_t_pascal_224/iter_46875.pth'
