# AdaMTL stage 2 of 3: pre-train the policy with the rest of the model
# frozen (the model base sets train_cfg.frozen: requires_grad=False). A
# leaf sets the length and its warm-up.
_base_ = ['schedule_adamw.py']
optim_wrapper = dict(optimizer=dict(lr=1e-3))
# The policy sees the budgets it will later be conditioned on, while
# learning to keep everything for all of them.
custom_hooks = [
    dict(type='BudgetScheduleHook', budget_range=(0.25, 1.0)),
    dict(type='ComplexityLoggerHook'),
]
