# configs/controllable_swin_synthetic.py, tiny, for the test suite.
_base_ = [
    '../../configs/controllable_swin_synthetic.py',
    '_base_/tiny_synthetic.py'
]
model = dict(
    backbone=dict(
        pretrain_img_size=64,
        embed_dims=32,
        depths=[2, 2, 2, 2],
        num_heads=[2, 4, 8, 16],
        window_size=4,
        drop_path_rate=0.2,
        mlp_ratio_choices=(1, 4)),
    decode_head=dict(
        in_channels=[32, 64, 128, 256],
        decoder=dict(channels=16, widths=(0.5, 1.0))))
train_dataloader = {{_base_.tiny_train_dataloader}}
val_dataloader = {{_base_.tiny_test_dataloader}}
test_dataloader = {{_base_.tiny_test_dataloader}}
# The test dataset has 6 training images (training takes the first 268,
# i.e. all of them): the table is measured on two of them.
lookup_dataloader = dict(
    batch_size=2,
    dataset=dict(indices=[4, 5],
                 pipeline={{_base_.tiny_test_dataloader.dataset.pipeline}}))
param_scheduler = {{_base_.tiny_param_scheduler}}
train_cfg = {{_base_.tiny_train_cfg}}
default_hooks = {{_base_.tiny_default_hooks}}
crop_size = (64, 64)
