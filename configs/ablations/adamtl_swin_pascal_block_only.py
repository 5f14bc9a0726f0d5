# AdaMTL ablation on pascal, stage 3 of 3 (joint adaptive training): block
# selection only (no token selection).
# Same data, schedule and evaluation as configs/adamtl_swin_pascal.py.
_base_ = ['../adamtl_swin_pascal.py']
model = dict(
    backbone=dict(policy=dict(token_select=False)),
    # No token decisions: no token term.
    train_cfg=dict(budget_loss=dict(token_weight=0.)),
)
load_from = 'work_dirs/adamtl_swin_pascal_block_only_policy/iter_1560.pth'
