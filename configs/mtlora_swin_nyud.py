# MTLoRA on NYUD-v2 (semseg, normals, edge, depth), 480x640, with the
# paper's PASCAL settings otherwise (Swin-T from ImageNet, TA-LoRA rank 64,
# TS-LoRA rank 4, HRNet-style decoders, batch 32, 300 epochs, AdamW
# 5e-4 x 32 / 512, 20 warm-up epochs, cosine, AMP). Augmentation: the
# package's NYUD pipeline (flip and random scale 1.0-1.5, as MTLoRA's, plus
# photometric distortion).
_base_ = [
    '_base_/models/mtlora_swin_mt.py', '_base_/datasets/nyud_mt.py',
    '_base_/schedules/schedule_adamw.py', '_base_/default_runtime.py'
]
# 300 epochs x 795 images / 32, and 20 of them to warm up.
max_iters = 7453
warmup_iters = 497
val_interval = 1000
model = dict(
    backbone=dict(
        # As the official code: no dropout on the fc1/fc2 task pairs'
        # stream inputs (the synthetic recipe keeps it).
        lora=dict(stream_dropout=False),
        init_cfg=dict(
            type='Pretrained', checkpoint='pretrained/swin_tiny_mmseg.pth')),
    decode_head=dict(
        tasks=dict(
            semseg=dict(out_channels=40),
            normals=dict(out_channels=3),
            edge=dict(out_channels=1),
            depth=dict(out_channels=1))))
optim_wrapper = dict(
    type='AmpOptimWrapper', optimizer=dict(lr=5e-4 * 32 / 512))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
        end=warmup_iters),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.0,
        by_epoch=False,
        begin=warmup_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
