# The paper's setting with Swin-B, stage 3 of 3.
_base_ = ['adamtl_swin_t_pascal_224.py']
model = dict(
    backbone=dict(
        embed_dims=128,
        depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32]),
    decode_head=dict(in_channels=[256, 512, 1024, 1024]))
load_from = 'work_dirs/adamtl_swin_b_pascal_224_policy/iter_1560.pth'
