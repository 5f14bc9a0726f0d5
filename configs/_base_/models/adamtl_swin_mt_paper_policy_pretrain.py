# AdaMTL as its paper trains it, stage 2 of 3: the policy pre-trained to
# keep everything, the rest frozen; taps after patch merging, one token
# selector per stage.
_base_ = ['adamtl_swin_mt_policy_pretrain.py']
model = dict(
    backbone=dict(
        out_after_downsample=True,
        policy=dict(budget_conditioned=False,
                    shared_token_selectors=True)),
    decode_head=dict(in_channels=[192, 384, 768, 768]),
    test_cfg=dict(budget=1.0))
