# Controllable widths on NYUD-v2 (4 tasks), 480x640: the static Swin-T
# multi-task model (configs/static_swin_nyud.py, same schedule and
# ImageNet start, its heads and MLP neurons re-ordered by importance)
# made slimmable: per stage 1/3, 2/3 or all heads and MLP
# ratio 1-4 (12 stage-uniform encoders, 20,736 per-stage ones), AdaMTL
# decoders at 0.25-1.0 of their 64 channels; sandwich rule with CI-KD.
# The last 80 training images are held out for the lookup table
# (tools/controllable.py table).
# (configs/_base_/models/controllable_swin_mt.py on the static config:
# mmengine forbids the same key in two bases.)
_base_ = ['./static_swin_nyud.py']
model = dict(
    type='ControllableEncoderDecoder',
    backbone=dict(
        type='SlimmableSwinTransformer',
        head_choices=(1 / 3, 2 / 3, 1.0),
        mlp_ratio_choices=(1, 2, 3, 4),
        # After the ImageNet weights load: heads and MLP neurons in order
        # of importance, so the narrow prefixes keep the important ones
        # (the widest computes the same; a trained checkpoint replaces
        # the weights as usual).
        reorder_importance=True),
    decode_head=dict(
        decoder=dict(type='SlimmableAdaMTLDecoder',
                     widths=(0.25, 0.5, 0.75, 1.0))),
    train_cfg=dict(
        sandwich=dict(
            num_random=2,
            dirichlet=0.2,
            distill=dict(type='CIKDLoss', loss_weight=1.0))))
model_wrapper_cfg = dict(type='SandwichDDP', find_unused_parameters=True)
num_train = 795
num_heldout = 80
train_dataloader = dict(dataset=dict(indices=num_train - num_heldout))
lookup_dataloader = dict(
    batch_size=4,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type={{_base_.dataset_type}},
        data_root={{_base_.data_root}},
        split='train',
        tasks={{_base_.tasks}},
        indices=list(range(num_train - num_heldout, num_train)),
        pipeline={{_base_.test_pipeline}}))
