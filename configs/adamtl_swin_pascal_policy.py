# AdaMTL stage 2 of 3 on PASCAL-Context (4,998 training images): pre-train
# the policy to "keep everything" with the rest frozen (about 10 epochs).
#   stage 1: configs/static_swin_pascal.py
#   stage 2: this config
#   stage 3: configs/adamtl_swin_pascal.py
_base_ = ['static_swin_pascal.py']
max_iters = 1560
model = dict(
    backbone=dict(
        type='AdaptiveSwinTransformer',
        # The ImageNet weights are already in the stage-1 checkpoint.
        init_cfg=None,
        policy=dict(type='PolicyHead', task_mode='single', tau=5.0)),
    train_cfg=dict(
        task_losses=False, budget_loss=dict(type='BudgetLoss',
                                            keep_all=True)),
    test_cfg=dict(budget=0.5))
load_from = 'work_dirs/static_swin_pascal/iter_46875.pth'
optim_wrapper = dict(
    optimizer=dict(lr=1e-3),
    paramwise_cfg=dict(
        _delete_=True,
        custom_keys={
            'backbone': dict(lr_mult=0., decay_mult=0.),
            'decode_head': dict(lr_mult=0., decay_mult=0.),
            'backbone.policy': dict(lr_mult=1., decay_mult=1.),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=max_iters // 5)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
custom_hooks = [
    dict(type='BudgetScheduleHook', budget_range=(0.25, 1.0)),
    dict(type='ComplexityLoggerHook', interval=50),
]
# The decoders get no gradient in this stage.
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
