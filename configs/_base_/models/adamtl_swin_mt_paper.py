# AdaMTL as its paper trains it (stage 3 of 3): taps after patch merging,
# a policy not conditioned on a budget, and AdaMTL's count-based loss
# lambda [MSE(share of blocks kept, 0.9) + MSE(width-weighted share of
# MLP tokens, 0.5)], lambda = 1.
_base_ = ['adamtl_swin_mt.py']
model = dict(
    backbone=dict(
        out_after_downsample=True,
        policy=dict(budget_conditioned=False)),
    decode_head=dict(in_channels=[192, 384, 768, 768]),
    train_cfg=dict(
        budget_loss=dict(
            _delete_=True, type='BudgetLoss', mode='count', loss_weight=1.0,
            block_target=0.9, token_target=0.5, token_weight=1.0,
            width_weighted=True)),
    # No budget input: the budget only switches the policy on.
    test_cfg=dict(budget=1.0, budget_mode='input'))
