# Tiny stage 3 (joint adaptive training) of configs/adamtl_swin_synthetic.py.
_base_ = ['tiny_static_swin_synthetic.py']
model = dict(
    backbone=dict(
        type='AdaptiveSwinTransformer',
        policy=dict(type='PolicyHead', task_mode='single')),
    train_cfg=dict(budget_loss=dict(type='BudgetLoss')),
    test_cfg=dict(budget=0.5))
custom_hooks = [
    dict(type='BudgetScheduleHook', budget_range=(0.25, 1.0),
         anneal_iters=2),
    dict(type='ComplexityLoggerHook', interval=1),
]
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
