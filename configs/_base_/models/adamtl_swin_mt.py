# AdaMTL's multi-task Swin (the main model, stage 3 of 3): the static
# model's architecture with AdaptiveSwinTransformer (mmseg's Swin keys plus
# the policy's, under backbone.policy.) and the budget loss. A leaf adds
# its dataset's tasks (and the synthetic set its small Swin).
_base_ = ['static_swin_mt.py']
model = dict(
    backbone=dict(
        type='AdaptiveSwinTransformer',
        # Stages 2 and 3 start from the previous stage's checkpoint
        # (load_from), which holds the ImageNet weights already.
        init_cfg=None,
        policy=dict(type='PolicyHead', task_mode='single', tau=5.0)),
    train_cfg=dict(
        # deterministic_weight: the noise-free decisions, what inference
        # runs, are trained towards the budget too.
        budget_loss=dict(type='BudgetLoss', loss_weight=5.0,
                         token_weight=0.1, deterministic_weight=1.0)),
    # Budget-conditioned: test_cfg.budget (or model.set_budget) picks any
    # budget at run time. 'target': the mean executed share of block
    # compute is the budget (through the budget curve BudgetCalibrationHook
    # stores in the checkpoint); 'cap': no image above budget x static.
    test_cfg=dict(budget=0.5, budget_mode='target'))
# Policy pre-training leaves the decoders without gradients.
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
