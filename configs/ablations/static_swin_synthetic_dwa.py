# The static multi-task model of `make demo` (800 iterations) with
# dynamic weight average (Liu et al., CVPR 2019); its period is one
# epoch of the 300 training images at batch 8 (38 iterations)
# on top of the fixed task weights; compared in docs/design.md
# ("Loss weighting").
_base_ = ['../static_swin_synthetic.py']
model = dict(
    decode_head=dict(
        loss_weighting=dict(type='DWAWeighting', interval=38,
                            temperature=2.0)))
