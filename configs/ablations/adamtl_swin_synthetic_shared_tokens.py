# AdaMTL ablation on synthetic, stage 3 of 3: one token selector per stage,
# shared by its blocks (AdaMTL's own). Same data, schedule and evaluation as
# configs/adamtl_swin_synthetic.py.
_base_ = ['../adamtl_swin_synthetic.py']
model = dict(backbone=dict(policy=dict(shared_token_selectors=True)))
load_from = ('work_dirs/adamtl_swin_synthetic_shared_tokens_policy/'
             'iter_100.pth')
