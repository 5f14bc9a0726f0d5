# The paper's setting, stage 3 of 3: AdaMTL Swin-T on PASCAL-Context at
# 224x224 with its count-based loss (blocks 0.9, tokens 0.5,
# width-weighted, lambda 1) and schedule (about 100 epochs).
_base_ = [
    '../_base_/models/adamtl_swin_mt_paper.py',
    '../_base_/datasets/pascal_context_mt_224.py',
    '../_base_/schedules/adamtl_paper_joint.py',
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
max_iters = 15625
val_interval = 2500
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
load_from = 'work_dirs/adamtl_swin_t_pascal_224_policy/iter_1560.pth'
