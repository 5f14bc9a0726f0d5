# Tiny stage 2 (policy pre-training) of configs/adamtl_swin_synthetic*.py.
_base_ = ['tiny_static_swin_synthetic.py']
model = dict(
    backbone=dict(
        type='AdaptiveSwinTransformer',
        policy=dict(type='PolicyHead', task_mode='single')),
    train_cfg=dict(
        task_losses=False, budget_loss=dict(type='BudgetLoss',
                                            keep_all=True)),
    test_cfg=dict(budget=0.5))
optim_wrapper = dict(
    paramwise_cfg=dict(
        _delete_=True,
        custom_keys={
            'backbone': dict(lr_mult=0., decay_mult=0.),
            'decode_head': dict(lr_mult=0., decay_mult=0.),
            'backbone.policy': dict(lr_mult=1., decay_mult=1.),
        }))
custom_hooks = [
    dict(type='BudgetScheduleHook', budget_range=(0.25, 1.0)),
    dict(type='ComplexityLoggerHook', interval=1),
]
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
