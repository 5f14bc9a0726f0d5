# Controllable widths on the embedded synthetic data, run by `make demo`:
# the small Swin of configs/static_swin_synthetic.py made slimmable (per
# stage half or all heads, MLP ratio 1-4: 8 stage-uniform encoders) with
# slimmable decoders (8/16/24/32 channels), trained from scratch for the
# static model's 800 iterations (each runs the sandwich's 4 sub-networks).
# The last 32 training images are held out of training: the lookup table
# of the deployment search is measured on them (`lookup_dataloader`).
_base_ = [
    '_base_/models/controllable_swin_mt.py',
    '_base_/datasets/synthetic_mt.py', '_base_/schedules/schedule_adamw.py',
    '_base_/default_runtime.py'
]
max_iters = 800
warmup_iters = 100
val_interval = 800
embed_dims = 48
num_train = 300
num_heldout = 32
model = dict(
    backbone=dict(
        pretrain_img_size=128,
        embed_dims=embed_dims,
        depths=[2, 2, 2, 2],
        num_heads=[2, 4, 8, 16],
        window_size=4,
        drop_path_rate=0.1,
        head_choices=(0.5, 1.0)),
    decode_head=dict(
        in_channels=[embed_dims * 2**i for i in range(4)],
        decoder=dict(channels=32),
        tasks=dict(
            semseg=dict(out_channels=6),
            human_parts=dict(out_channels=7),
            saliency=dict(out_channels=1),
            normals=dict(out_channels=3),
            edge=dict(out_channels=1),
            depth=dict(out_channels=1))))
# The first 268 training images.
train_dataloader = dict(dataset=dict(indices=num_train - num_heldout))
lookup_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type={{_base_.dataset_type}},
        data_root={{_base_.data_root}},
        split='train',
        tasks={{_base_.tasks}},
        indices=list(range(num_train - num_heldout, num_train)),
        pipeline={{_base_.test_pipeline}}))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
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
default_hooks = dict(
    logger=dict(interval=50), checkpoint=dict(interval=val_interval))
randomness = dict(seed=0)
# The lookup table and make demo's grid evaluate all 32 encoder x decoder
# configurations on every image: edges with the fast approximation
# (edge_protocol='distance'; the BSDS benchmark would take about 20 min of
# the demo). Its edge/odsF is comparable only within this model's
# measurements and with a static model evaluated the same way.
val_evaluator = dict(
    type='MultiTaskMetric', edge_protocol='distance', edge_thresholds=25)
test_evaluator = val_evaluator
