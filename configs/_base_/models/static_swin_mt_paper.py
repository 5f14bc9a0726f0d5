# The static multi-task Swin-T with the official AdaMTL decoder taps: the
# stage outputs after patch merging (192/384/768/768 channels at 1/8,
# 1/16, 1/32, 1/32; the decoder upsamples them to 1/8).
_base_ = ['static_swin_mt.py']
model = dict(
    backbone=dict(type='SwinEncoder', out_after_downsample=True),
    decode_head=dict(in_channels=[192, 384, 768, 768]))
