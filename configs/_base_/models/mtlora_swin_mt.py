# MTLoRA on Swin-T (Agiza et al., CVPR 2024): mmseg's Swin with TA-LoRA in
# every block and TS-LoRA in the last block of each stage, tapped after
# each patch merging (192/384/768/768 channels), and MTLoRA's HRNet-style
# decoder per task. Only the adapters, the patch embedding, the norms, the
# relative-position-bias tables, the patch-merging reductions and the
# decoders train. The dataset config fills decode_head.tasks (and with it
# backbone.lora.tasks).
_base_ = ['static_swin_mt.py']
norm_cfg = dict(type='BN', requires_grad=True)
# What trains (the official code's set); MTLoRA+ (lora.downsample=True)
# leaves out the reduction's weight, which then has its own TA-LoRA.
mtlora_trainable = [
    'backbone.*lora_*', 'backbone.*task_[AB].*', 'backbone.patch_embed',
    'backbone.*norm*', 'backbone.*relative_position_bias_table',
    'backbone.stages.*.downsample.reduction.weight'
]
model = dict(
    # The static model's Swin-T (mmseg's arguments), with the adapters.
    backbone=dict(
        type='MTLoRASwinTransformer',
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
        in_channels=[192, 384, 768, 768],
        decoder=dict(
            _delete_=True,
            type='HRFusionDecoder',
            fuse_channels=[18, 36, 72, 144],
            norm_cfg=norm_cfg)),
    train_cfg=dict(frozen=['backbone'], trainable=mtlora_trainable))
# The last block's shared output is read by nothing when every task has its
# own stream (as in the official code), so the shared TA-LoRA pair of its
# fc2 gets no gradient: DDP must expect unused parameters.
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
