# Reference of configs/mtlora_swin_synthetic.py: full multi-task fine-tuning
# of the same pretrained encoder (no adapters, everything trains), same
# decoders, data, iterations and schedule.
_base_ = ['mtlora_swin_synthetic.py']
model = dict(
    # The pretraining's encoder, as it is.
    backbone=dict(
        _delete_=True,
        type='SwinEncoder',
        pretrain_img_size=128,
        embed_dims=48,
        depths=[2, 2, 2, 2],
        num_heads=[2, 4, 8, 16],
        window_size=4,
        drop_path_rate=0.1,
        out_after_downsample=True),
    train_cfg=dict(_delete_=True))
