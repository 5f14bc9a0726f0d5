# AdaMTL stage 2 of 3: the adaptive model trained with the budget loss
# alone, in AdaMTL's pre-training form L1(decisions, 1) ("keep
# everything"); the decoders do not run.
_base_ = ['adamtl_swin_mt.py']
model = dict(
    train_cfg=dict(
        _delete_=True,
        task_losses=False,
        budget_loss=dict(type='BudgetLoss', keep_all=True)))
