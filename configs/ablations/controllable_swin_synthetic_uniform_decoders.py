# Controllable widths ablation on synthetic (issue 30): the random
# sub-networks' decoder widths drawn per task uniformly from the widths the
# widest and narrowest passes leave out (0.5 and 0.75 of 32 channels here),
# so every width trains about equally often, instead of through a
# Dirichlet(0.2) preference. Same data, schedule and evaluation as
# configs/controllable_swin_synthetic.py.
_base_ = ['../controllable_swin_synthetic.py']
model = dict(train_cfg=dict(sandwich=dict(decoder_sampling='uniform')))
