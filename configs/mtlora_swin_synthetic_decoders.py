# Reference of configs/mtlora_swin_synthetic.py: the pretrained encoder
# frozen whole, only the decoders train (same data, iterations, schedule).
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
    train_cfg=dict(_delete_=True, frozen=['backbone']))
