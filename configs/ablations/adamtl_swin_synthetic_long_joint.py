# AdaMTL ablation on synthetic, stage 3 of 3 of the long joint stage
# (400 / 100 / 900 iterations, see static_swin_synthetic_400it.py): the
# main recipe's joint stage, 900 iterations instead of 500 (its warm-up,
# budget annealing and cosine follow the length).
_base_ = ['../adamtl_swin_synthetic.py']
max_iters = 900
val_interval = 900
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
load_from = ('work_dirs/adamtl_swin_synthetic_long_joint_policy/'
             'iter_100.pth')
