# AdaMTL ablation on synthetic, stage 2 of 3 of the long joint stage
# (400 / 100 / 900 iterations, see static_swin_synthetic_400it.py): the
# main recipe's policy pre-training, from the 400-iteration static model.
_base_ = ['../adamtl_swin_synthetic_policy.py']
load_from = 'work_dirs/static_swin_synthetic_400it/iter_400.pth'
