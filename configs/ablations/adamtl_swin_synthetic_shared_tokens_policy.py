# AdaMTL ablation on synthetic, stage 2 of 3 (policy pre-training): one
# token selector per stage, shared by its blocks (AdaMTL's own), instead of
# one per block.
#   python tools/train.py \
#       configs/ablations/adamtl_swin_synthetic_shared_tokens_policy.py
#   python tools/train.py \
#       configs/ablations/adamtl_swin_synthetic_shared_tokens.py
_base_ = ['../adamtl_swin_synthetic_policy.py']
model = dict(backbone=dict(policy=dict(shared_token_selectors=True)))
