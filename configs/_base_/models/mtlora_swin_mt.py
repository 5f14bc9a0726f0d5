# MTLoRA on Swin-T (Agiza et al., CVPR 2024): mmseg's Swin with TA-LoRA in
# every block and TS-LoRA in the last block of each stage, tapped after
# each patch merging (192/384/768/768 channels), and MTLoRA's HRNet-style
# decoder per task. Only the adapters, the patch embedding, the norms, the
# relative-position-bias tables, the patch-merging reductions and the
# decoders train. The dataset config fills decode_head.tasks (and with it
# backbone.lora.tasks).
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(
    type='MultiTaskDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    size_divisor=32)
# What trains (the official code's set); MTLoRA+ (lora.downsample=True)
# leaves out the reduction's weight, which then has its own TA-LoRA.
mtlora_trainable = [
    'backbone.*lora_*', 'backbone.*task_[AB].*', 'backbone.patch_embed',
    'backbone.*norm*', 'backbone.*relative_position_bias_table',
    'backbone.stages.*.downsample.reduction.weight'
]
model = dict(
    type='MultiTaskEncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='MTLoRASwinTransformer',
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
        norm_cfg=dict(type='LN', requires_grad=True),
        out_after_downsample=True,
        lora=dict(
            r=64,
            scale=4.0,
            dropout=0.05,
            targets=['qkv', 'proj', 'fc1', 'fc2'],
            task_r=4,
            task_scale=4.0,
            task_targets=['proj', 'fc1', 'fc2'],
            downsample=False)),
    decode_head=dict(
        type='MultiTaskHead',
        in_channels=[192, 384, 768, 768],
        decoder=dict(
            type='HRFusionDecoder',
            fuse_channels=[18, 36, 72, 144],
            norm_cfg=norm_cfg),
        tasks=dict(),
        align_corners=False),
    train_cfg=dict(frozen=['backbone'], trainable=mtlora_trainable),
    test_cfg=dict())
# The last block's shared output is read by nothing when every task has its
# own stream (as in the official code), so the shared TA-LoRA pair of its
# fc2 gets no gradient: DDP must expect unused parameters.
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
