# AdaMTL ablation on synthetic, stage 3 of 3 (joint adaptive training): the
# task-aware policy: one mask set per task (tasks filled in from the heads),
# the executed mask the union over the tasks run.
# Same data, schedule and evaluation as configs/adamtl_swin_synthetic.py.
_base_ = ['../adamtl_swin_synthetic.py']
model = dict(
    backbone=dict(policy=dict(task_mode='per_task')),
)
load_from = 'work_dirs/adamtl_swin_synthetic_per_task_policy/iter_100.pth'
# AdaMTL's alternating per-task training: over the first half of the run,
# one task per epoch (its decoder and its mask), round robin; then all.
custom_hooks = _base_.custom_hooks + [
    dict(type='TaskAlternationHook', alternate_ratio=0.5)
]
