# Controllable widths ablation on synthetic (issue 30): prediction-level
# distillation from the widest sub-network in the sandwich step, next to
# CI-KD on the features. Same data, schedule and evaluation as
# configs/controllable_swin_synthetic.py.
_base_ = ['../controllable_swin_synthetic.py']
model = dict(
    train_cfg=dict(
        sandwich=dict(
            predict_distill=dict(type='PredictionDistillLoss',
                                 loss_weight=1.0, temperature=1.0))))
