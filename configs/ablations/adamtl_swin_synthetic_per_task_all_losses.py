# AdaMTL ablation on synthetic, stage 3 of 3: the task-aware policy trained
# with AdaMTL's own alternation: in a task's turn every task's loss is
# trained (through that task's mask), the other tasks' decoders frozen
# (official USE_SINGLE_TASK_LOSS: False). Same stage 2, data, schedule and
# evaluation as configs/ablations/adamtl_swin_synthetic_per_task.py.
#   python tools/train.py \
#       configs/ablations/adamtl_swin_synthetic_per_task_policy.py
#   python tools/train.py \
#       configs/ablations/adamtl_swin_synthetic_per_task_all_losses.py
_base_ = ['adamtl_swin_synthetic_per_task.py']
custom_hooks = _base_.custom_hooks[:-1] + [
    dict(_base_.custom_hooks[-1], all_task_losses=True)
]
