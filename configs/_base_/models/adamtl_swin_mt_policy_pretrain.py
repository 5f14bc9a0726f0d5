# AdaMTL stage 2 of 3: the adaptive model trained with the budget loss
# alone, in AdaMTL's pre-training form L1(decisions, 1) ("keep
# everything"); the decoders do not run, and everything but the policy is
# frozen (requires_grad=False: no weight gradients, nothing for the
# optimizer or the gradient clipping; the frozen set is logged).
_base_ = ['adamtl_swin_mt.py']
model = dict(
    train_cfg=dict(
        _delete_=True,
        task_losses=False,
        frozen=['backbone', 'decode_head'],
        trainable=['backbone.policy'],
        budget_loss=dict(type='BudgetLoss', keep_all=True)),
    # A policy that keeps everything has no budget curve to follow yet:
    # its validation runs the raw budget input.
    test_cfg=dict(budget_mode='input'))
