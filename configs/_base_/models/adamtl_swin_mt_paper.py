# AdaMTL as its paper trains it (stage 3 of 3): taps after patch merging,
# a policy not conditioned on a budget with one token selector per stage
# (shared by its blocks), and AdaMTL's count-based loss
# lambda [MSE(share of blocks kept, 0.9) + MSE(share of MLP tokens, 0.5)],
# lambda = 1, each block's token share weighted by width x token count.
_base_ = ['adamtl_swin_mt.py']
model = dict(
    backbone=dict(
        out_after_downsample=True,
        policy=dict(budget_conditioned=False,
                    shared_token_selectors=True)),
    decode_head=dict(in_channels=[192, 384, 768, 768]),
    train_cfg=dict(
        budget_loss=dict(
            _delete_=True, type='BudgetLoss', mode='count', loss_weight=1.0,
            block_target=0.9, token_target=0.5, token_weight=1.0,
            width_weighted=True, token_count_weighted=True)),
    # No budget input: the budget only switches the policy on.
    test_cfg=dict(budget=1.0, budget_mode='input'))
