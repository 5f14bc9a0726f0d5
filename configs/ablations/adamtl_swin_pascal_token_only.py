# AdaMTL ablation on pascal, stage 3 of 3 (joint adaptive training): token
# selection only (every block runs, its MLP on the selected tokens).
# Same data, schedule and evaluation as configs/adamtl_swin_pascal.py.
_base_ = ['../adamtl_swin_pascal.py']
model = dict(
    backbone=dict(policy=dict(block_select=False)),
)
load_from = 'work_dirs/adamtl_swin_pascal_token_only_policy/iter_1560.pth'
