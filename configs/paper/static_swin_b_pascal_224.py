# The paper's setting with Swin-B (ImageNet swin_base_patch4_window7_224,
# converted with tools/convert_swin_checkpoint.py), stage 1 of 3.
_base_ = ['static_swin_t_pascal_224.py']
model = dict(
    backbone=dict(
        embed_dims=128,
        depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32],
        init_cfg=dict(
            type='Pretrained',
            checkpoint='pretrained/swin_base_mmseg.pth')),
    decode_head=dict(in_channels=[256, 512, 1024, 1024]))
