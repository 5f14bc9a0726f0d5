# AdaMTL on NYUD-v2 (795 training images), stage 3 of 3: joint adaptive
# training with the budget loss (about 100 epochs).
#   python tools/train.py configs/static_swin_nyud.py
#   python tools/train.py configs/adamtl_swin_nyud_policy.py
#   python tools/train.py configs/adamtl_swin_nyud.py
# Budget-conditioned: test_cfg.budget (or model.set_budget) picks any
# budget in budget_range at run time.
_base_ = ['static_swin_nyud.py']
max_iters = 2500
warmup_iters = 125
val_interval = 500
model = dict(
    backbone=dict(
        type='AdaptiveSwinTransformer',
        init_cfg=None,
        policy=dict(type='PolicyHead', task_mode='single', tau=5.0)),
    train_cfg=dict(
        budget_loss=dict(type='BudgetLoss', loss_weight=5.0,
                         token_weight=0.1)),
    test_cfg=dict(budget=0.5))
load_from = 'work_dirs/adamtl_swin_nyud_policy/iter_250.pth'
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
    dict(type='BudgetScheduleHook', budget_range=(0.25, 1.0),
         anneal_iters=max_iters // 5, tau=(5.0, 5.0)),
    dict(type='ComplexityLoggerHook', interval=50),
]
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
