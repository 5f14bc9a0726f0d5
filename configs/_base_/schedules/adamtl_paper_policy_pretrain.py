# AdaMTL's stage 2 schedule as its code runs it (the rest is frozen by the
# model's train_cfg).
_base_ = ['schedule_adamw_paper.py']
custom_hooks = [dict(type='ComplexityLoggerHook')]
