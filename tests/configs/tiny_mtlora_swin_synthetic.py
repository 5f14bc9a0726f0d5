# configs/mtlora_swin_synthetic.py, tiny, for the test suite (no
# pretrained encoder: trains from its initialisation).
_base_ = [
    '../../configs/mtlora_swin_synthetic.py', '_base_/tiny_synthetic.py'
]
model = dict(
    backbone=dict(
        pretrain_img_size=64,
        embed_dims=32,
        num_heads=[1, 2, 4, 8],
        window_size=4,
        drop_path_rate=0.2,
        lora=dict(r=4)),
    decode_head=dict(
        in_channels=[64, 128, 256, 256],
        decoder=dict(fuse_channels=[4, 8, 8, 8])))
load_from = None
train_dataloader = {{_base_.tiny_train_dataloader}}
val_dataloader = {{_base_.tiny_test_dataloader}}
test_dataloader = {{_base_.tiny_test_dataloader}}
param_scheduler = {{_base_.tiny_param_scheduler}}
train_cfg = {{_base_.tiny_train_cfg}}
default_hooks = {{_base_.tiny_default_hooks}}
crop_size = (64, 64)
