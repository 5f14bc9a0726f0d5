# AdaMTL ablation on nyud, stage 2 of 3 (policy pre-training): the task-aware
# policy: one mask set per task (tasks filled in from the heads), the
# executed mask the union over the tasks run.
#   python tools/train.py configs/ablations/adamtl_swin_nyud_per_task_policy.py
#   python tools/train.py configs/ablations/adamtl_swin_nyud_per_task.py
_base_ = ['../adamtl_swin_nyud_policy.py']
model = dict(backbone=dict(policy=dict(task_mode='per_task')))
