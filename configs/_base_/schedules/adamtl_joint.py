# AdaMTL stage 3 of 3: joint adaptive training of the whole model with the
# budget loss. A leaf sets the length, the learning rate and the warm-up.
_base_ = ['schedule_adamw.py']
# The policy learns from scratch what the rest only adapts: 10x the lr.
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={'backbone.policy': dict(lr_mult=10.)}))
custom_hooks = [
    # Per image, targets anneal from 1.0 to U(0.25, 1.0) over the first
    # 40% of the iterations.
    dict(type='BudgetScheduleHook', budget_range=(0.25, 1.0),
         anneal_ratio=0.4, tau=(5.0, 5.0)),
    dict(type='ComplexityLoggerHook'),
    # The policy's budget curve, measured before every checkpoint is
    # saved (budget_mode='target' reads it).
    dict(type='BudgetCalibrationHook'),
]
