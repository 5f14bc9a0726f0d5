# AdaMTL ablation on pascal, stage 3 of 3 (joint adaptive training): the
# task-aware policy: one mask set per task (tasks filled in from the heads),
# the executed mask the union over the tasks run.
# Same data, schedule and evaluation as configs/adamtl_swin_pascal.py.
_base_ = ['../adamtl_swin_pascal.py']
model = dict(
    backbone=dict(policy=dict(task_mode='per_task')),
)
load_from = 'work_dirs/adamtl_swin_pascal_per_task_policy/iter_1560.pth'
# AdaMTL's alternating per-task training as its code runs it (taw,
# USE_SINGLE_TASK_LOSS: False): over the first half of the run one task per
# epoch, round robin, its mask and every task's loss trained, the other
# tasks' decoders frozen; then all. (configs/ablations/
# adamtl_swin_synthetic_per_task.py keeps the turn's loss alone, the
# hook's default, for the ablation of the two.)
custom_hooks = _base_.custom_hooks + [
    dict(type='TaskAlternationHook', alternate_ratio=0.5,
         all_task_losses=True)
]
