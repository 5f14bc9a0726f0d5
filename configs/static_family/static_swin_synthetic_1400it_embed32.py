# The static family of tools/pareto.py (see
# static_swin_synthetic_1400it_depths1121.py): the fair baseline's
# 2-2-2-2 encoder made narrower, embedding 32 instead of 48 (every
# stage's channels times 2/3, head dimension 16 instead of 24), with the
# same decoders, trained the same 1400 iterations.
_base_ = ['../static_swin_synthetic_1400it.py']
embed_dims = 32
model = dict(
    backbone=dict(embed_dims=embed_dims),
    decode_head=dict(in_channels=[embed_dims * 2**i for i in range(4)]))
