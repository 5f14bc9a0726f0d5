# AdaMTL ablation on synthetic, stage 1 of 3 of the long joint stage
# (issue 30): the same 1400 iterations in all as the main recipe, split
# 400 static / 100 policy / 900 joint instead of 800 / 100 / 500, to see
# whether the joint stage's length limits accuracy.
#   stage 1: this config
#   stage 2: configs/ablations/adamtl_swin_synthetic_long_joint_policy.py
#   stage 3: configs/ablations/adamtl_swin_synthetic_long_joint.py
_base_ = ['../static_swin_synthetic.py']
max_iters = 400
val_interval = 400
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
