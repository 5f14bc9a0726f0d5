# The fair static baseline of `make demo`: the static multi-task Swin
# trained for as many iterations as AdaMTL's three stages together
# (800 static + 100 policy pre-training + 500 joint = 1400), so that Δm
# shows what skipping costs, not what 600 more iterations give.
# configs/static_swin_synthetic.py (800 iterations) is only AdaMTL's
# stage-1 starting point.
_base_ = ['static_swin_synthetic.py']
max_iters = 1400
val_interval = 1400
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
