# AdaMTL on the embedded synthetic dataset: stage 3 of 3, joint adaptive
# training of the whole model with the budget loss (the main config).
#   python tools/train.py configs/static_swin_synthetic.py
#   python tools/train.py configs/adamtl_swin_synthetic_policy.py
#   python tools/train.py configs/adamtl_swin_synthetic.py
# The policy is conditioned on the budget: one model serves every budget
# in budget_range; test_cfg.budget (or model.set_budget) picks one.
_base_ = ['static_swin_synthetic.py']
max_iters = 500
warmup_iters = 50
val_interval = 500
model = dict(
    backbone=dict(
        type='AdaptiveSwinTransformer',
        policy=dict(type='PolicyHead', task_mode='single', tau=5.0)),
    train_cfg=dict(
        budget_loss=dict(type='BudgetLoss', loss_weight=5.0,
                         token_weight=0.1)),
    test_cfg=dict(budget=0.5))
load_from = 'work_dirs/adamtl_swin_synthetic_policy/iter_100.pth'
# The policy learns from scratch what the rest only adapts: 10x the lr.
optim_wrapper = dict(
    optimizer=dict(lr=5e-4),
    paramwise_cfg=dict(
        custom_keys={'backbone.policy': dict(lr_mult=10.)}))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0,
        end=warmup_iters),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.0,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
custom_hooks = [
    # Targets anneal from 1.0 to U(0.25, 1.0) per image over 200 iters.
    dict(type='BudgetScheduleHook', budget_range=(0.25, 1.0),
         anneal_iters=200, tau=(5.0, 5.0)),
    dict(type='ComplexityLoggerHook', interval=50),
]
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
