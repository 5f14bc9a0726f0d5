# The static multi-task model of `make demo` (800 iterations) with
# uncertainty weighting (Kendall et al., CVPR 2018)
# on top of the fixed task weights; compared in docs/design.md
# ("Loss weighting").
_base_ = ['../static_swin_synthetic.py']
model = dict(decode_head=dict(loss_weighting=dict(type='UncertaintyWeighting')))
