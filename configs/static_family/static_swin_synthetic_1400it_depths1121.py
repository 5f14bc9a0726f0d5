# The static family of tools/pareto.py: the reference curve a user gets
# without any adaptive method, every member trained as long as AdaMTL's
# three stages together (1400 iterations, the fair baseline's recipe).
# Members: configs/static_swin_synthetic_1400it.py (depths 2-2-2-2),
# configs/static_swin_synthetic_small.py (1-1-1-1), this config (1-1-2-1,
# between the two; the third stage the deeper one, as in Swin-T) and
# static_swin_synthetic_1400it_embed32.py (2-2-2-2, a narrower encoder).
_base_ = ['../static_swin_synthetic_1400it.py']
model = dict(backbone=dict(depths=[1, 1, 2, 1]))
