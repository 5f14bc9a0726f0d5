# AdaMTL's schedule as its code runs it: AdamW, lr 5e-4 x batch / 512,
# linear warm-up, cosine to 5e-6 x batch / 512, AMP, grad clip 5
# (batch 32: 4 GPUs x 8). A leaf sets the lengths.
_base_ = ['schedule_adamw.py']
batch_size = 32
optim_wrapper = dict(
    type='AmpOptimWrapper', optimizer=dict(lr=5e-4 * batch_size / 512))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=1000),
    dict(type='CosineAnnealingLR', eta_min=5e-6 * batch_size / 512,
         by_epoch=False, begin=1000),
]
