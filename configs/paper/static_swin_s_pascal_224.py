# The paper's setting with Swin-S (ImageNet swin_small_patch4_window7_224,
# converted with tools/convert_swin_checkpoint.py), stage 1 of 3.
_base_ = ['static_swin_t_pascal_224.py']
model = dict(
    backbone=dict(
        embed_dims=96,
        depths=[2, 2, 18, 2],
        num_heads=[3, 6, 12, 24],
        init_cfg=dict(
            type='Pretrained',
            checkpoint='pretrained/swin_small_mmseg.pth')),
    decode_head=dict(in_channels=[192, 384, 768, 768]))
