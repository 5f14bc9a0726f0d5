# AdaMTL ablation on nyud, stage 2 of 3 (policy pre-training): token
# selection only (every block runs, its MLP on the selected tokens).
#   python tools/train.py
# configs/ablations/adamtl_swin_nyud_token_only_policy.py
#   python tools/train.py configs/ablations/adamtl_swin_nyud_token_only.py
_base_ = ['../adamtl_swin_nyud_policy.py']
model = dict(backbone=dict(policy=dict(block_select=False)))
