# Static multi-task Swin-T: the package's SwinEncoder (mmseg's
# SwinTransformer modules, keys and forward, bit for bit, so mmseg Swin
# checkpoints load as they are; the static encoder of the encoder
# contract) and one AdaMTL decoder per task. The dataset config fills
# decode_head.tasks.
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(
    type='MultiTaskDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    size_divisor=32)
model = dict(
    type='MultiTaskEncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='SwinEncoder',
        pretrain_img_size=224,
        embed_dims=96,
        patch_size=4,
        window_size=7,
        mlp_ratio=4,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        strides=(4, 2, 2, 2),
        out_indices=(0, 1, 2, 3),
        qkv_bias=True,
        qk_scale=None,
        patch_norm=True,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.2,
        use_abs_pos_embed=False,
        act_cfg=dict(type='GELU'),
        norm_cfg=dict(type='LN', requires_grad=True)),
    decode_head=dict(
        type='MultiTaskHead',
        in_channels=[96, 192, 384, 768],
        decoder=dict(type='AdaMTLDecoder', channels=64, norm_cfg=norm_cfg),
        tasks=dict(),
        align_corners=False),
    train_cfg=dict(),
    test_cfg=dict())
