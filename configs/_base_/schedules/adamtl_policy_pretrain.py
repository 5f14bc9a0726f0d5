# AdaMTL stage 2 of 3: pre-train the policy with the rest of the model
# frozen. A leaf sets the length and its warm-up.
_base_ = ['schedule_adamw.py']
# Freeze everything but the policy: the longest matching key wins.
optim_wrapper = dict(
    optimizer=dict(lr=1e-3),
    paramwise_cfg=dict(
        _delete_=True,
        custom_keys={
            'backbone': dict(lr_mult=0., decay_mult=0.),
            'decode_head': dict(lr_mult=0., decay_mult=0.),
            'backbone.policy': dict(lr_mult=1., decay_mult=1.),
        }))
# The policy sees the budgets it will later be conditioned on, while
# learning to keep everything for all of them.
custom_hooks = [
    dict(type='BudgetScheduleHook', budget_range=(0.25, 1.0)),
    dict(type='ComplexityLoggerHook'),
]
