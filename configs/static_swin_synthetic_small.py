# The static-smaller control of `make demo`: one block per stage instead
# of two (about half the blocks' compute, close to AdaMTL at budget 0.5),
# trained for the same 1400 iterations as the fair baseline.
_base_ = ['static_swin_synthetic_1400it.py']
model = dict(backbone=dict(depths=[1, 1, 1, 1]))
