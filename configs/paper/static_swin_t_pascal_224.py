# The paper's setting, stage 1 of 3: static multi-task Swin-T on
# PASCAL-Context at 224x224, decoder on the stage outputs after patch
# merging, AdaMTL's schedule (cosine to 5e-6 x batch / 512, AMP).
#   python tools/train.py configs/paper/static_swin_t_pascal_224.py
#   python tools/train.py configs/paper/adamtl_swin_t_pascal_224_policy.py
#   python tools/train.py configs/paper/adamtl_swin_t_pascal_224.py
_base_ = [
    '../_base_/models/static_swin_mt_paper.py',
    '../_base_/datasets/pascal_context_mt_224.py',
    '../_base_/schedules/schedule_adamw_paper.py',
    '../_base_/default_runtime.py'
]
model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained', checkpoint='pretrained/swin_tiny_mmseg.pth')),
    decode_head=dict(
        # Losses and weights: the TaskSpec defaults, AdaMTL's.
        tasks=dict(
            semseg=dict(out_channels=21),
            human_parts=dict(out_channels=7),
            saliency=dict(out_channels=1),
            normals=dict(out_channels=3),
            edge=dict(out_channels=1))))
# 300 epochs of 4,998 images at 32 images per iteration.
max_iters = 46875
val_interval = 5000
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
