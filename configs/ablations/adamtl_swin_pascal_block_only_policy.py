# AdaMTL ablation on pascal, stage 2 of 3 (policy pre-training): block
# selection only (no token selection).
#   python tools/train.py
# configs/ablations/adamtl_swin_pascal_block_only_policy.py
#   python tools/train.py configs/ablations/adamtl_swin_pascal_block_only.py
_base_ = ['../adamtl_swin_pascal_policy.py']
model = dict(backbone=dict(policy=dict(token_select=False)))
