# The paper's setting with Swin-S, stage 2 of 3.
_base_ = ['adamtl_swin_t_pascal_224_policy.py']
model = dict(
    backbone=dict(
        embed_dims=96,
        depths=[2, 2, 18, 2],
        num_heads=[3, 6, 12, 24]),
    decode_head=dict(in_channels=[192, 384, 768, 768]))
load_from = 'work_dirs/static_swin_s_pascal_224/iter_46875.pth'
