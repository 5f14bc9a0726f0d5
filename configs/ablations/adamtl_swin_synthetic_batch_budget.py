# AdaMTL ablation on synthetic, stage 3 of 3: the budget held on the batch's
# mean instead of per image. One budget per batch (drawn as the main
# config's per-image ones), and BudgetLoss(reduction='batch'): the images
# of a batch are free to take more or less than the budget, so the policy
# can move compute from easy images to hard ones. Same data, schedule,
# stage 2 and evaluation as configs/adamtl_swin_synthetic.py.
#   python tools/train.py \
#       configs/ablations/adamtl_swin_synthetic_batch_budget.py
_base_ = ['../adamtl_swin_synthetic.py']
model = dict(train_cfg=dict(budget_loss=dict(reduction='batch')))
custom_hooks = [
    dict(_base_.custom_hooks[0], per_batch=True)
] + _base_.custom_hooks[1:]
