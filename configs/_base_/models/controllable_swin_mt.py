# Controllable multi-task Swin-T ("Efficient Controllable Multi-Task
# Architectures", Aich et al., ICCV 2023, on Swin): a slimmable encoder
# (per stage 1/3, 2/3 or all heads and MLP ratio 1-4; mmseg's keys, so
# Swin checkpoints load unchanged) and slimmable AdaMTL decoders (widths
# 0.25-1.0, switchable BN), trained by the sandwich rule with CI-KD.
_base_ = ['./static_swin_mt.py']
model = dict(
    type='ControllableEncoderDecoder',
    backbone=dict(
        type='SlimmableSwinTransformer',
        head_choices=(1 / 3, 2 / 3, 1.0),
        mlp_ratio_choices=(1, 2, 3, 4)),
    decode_head=dict(
        decoder=dict(type='SlimmableAdaMTLDecoder',
                     widths=(0.25, 0.5, 0.75, 1.0))),
    train_cfg=dict(
        sandwich=dict(
            num_random=2,
            # DYMU's Dirichlet concentration for the random preferences.
            dirichlet=0.2,
            distill=dict(type='CIKDLoss', loss_weight=1.0))),
    test_cfg=dict())
# One optimizer step per iteration over the sandwich's four sub-networks;
# under DDP their gradients are all-reduced once, and the switchable BNs
# of widths a rank did not draw get none.
model_wrapper_cfg = dict(type='SandwichDDP', find_unused_parameters=True)
