# The static multi-task model of `make demo` (800 iterations) with
# GradNorm (Chen et al., ICML 2018) on the shared stage features
# on top of the fixed task weights; compared in docs/design.md
# ("Loss weighting").
_base_ = ['../static_swin_synthetic.py']
model = dict(decode_head=dict(loss_weighting=dict(type='GradNormWeighting', alpha=1.5)))
