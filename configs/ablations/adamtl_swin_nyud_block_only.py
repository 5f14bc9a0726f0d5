# AdaMTL ablation on nyud, stage 3 of 3 (joint adaptive training): block
# selection only (no token selection).
# Same data, schedule and evaluation as configs/adamtl_swin_nyud.py.
_base_ = ['../adamtl_swin_nyud.py']
model = dict(
    backbone=dict(policy=dict(token_select=False)),
    # No token decisions: no token term.
    train_cfg=dict(budget_loss=dict(token_weight=0.)),
)
load_from = 'work_dirs/adamtl_swin_nyud_block_only_policy/iter_250.pth'
