# Stage 2 frozen the old way, kept to measure what requires_grad=False
# saves (docs/adamtl.md): the backbone and decoders train with lr_mult=0,
# so backward still computes their gradients (and the gradient clipping
# sees them).
_base_ = ['../adamtl_swin_synthetic_policy.py']
model = dict(
    train_cfg=dict(frozen=None, trainable=None))
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            'backbone': dict(lr_mult=0., decay_mult=0.),
            'decode_head': dict(lr_mult=0., decay_mult=0.),
            'backbone.policy': dict(lr_mult=1., decay_mult=1.),
        }))
