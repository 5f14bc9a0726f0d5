# AdaMTL stage 2 of 3 on the synthetic dataset: pre-train the policy to
# "keep everything" with the rest of the model frozen.
#   stage 1: configs/static_swin_synthetic.py        (static multi-task)
#   stage 2: this config                              (policy pre-training)
#   stage 3: configs/adamtl_swin_synthetic.py        (joint adaptive)
# Each stage starts from the previous one's last checkpoint (load_from).
_base_ = ['static_swin_synthetic.py']
max_iters = 100
model = dict(
    backbone=dict(
        type='AdaptiveSwinTransformer',
        policy=dict(type='PolicyHead', task_mode='single', tau=5.0)),
    # Only the budget loss, in AdaMTL's pre-training form L1(mask, 1): the
    # decoders do not run.
    train_cfg=dict(
        task_losses=False, budget_loss=dict(type='BudgetLoss',
                                            keep_all=True)),
    test_cfg=dict(budget=0.5))
load_from = 'work_dirs/static_swin_synthetic/iter_800.pth'
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
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20), checkpoint=dict(interval=max_iters))
# The policy sees the budgets it will later be conditioned on, while
# learning to keep everything for all of them.
custom_hooks = [
    dict(type='BudgetScheduleHook', budget_range=(0.25, 1.0)),
    dict(type='ComplexityLoggerHook', interval=20),
]
# The decoders get no gradient in this stage.
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
