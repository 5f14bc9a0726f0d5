# AdaMTL's stage 3 schedule as its code runs it: count-based targets, no
# budget schedule (the policy is not budget-conditioned).
_base_ = ['schedule_adamw_paper.py']
custom_hooks = [dict(type='ComplexityLoggerHook')]
