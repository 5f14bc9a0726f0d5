# configs/adamtl_swin_synthetic.py (stage 3: joint adaptive training), tiny,
# for the test suite; tests give load_from.
_base_ = [
    '../../configs/adamtl_swin_synthetic.py', '_base_/tiny_synthetic.py'
]
model = {{_base_.tiny_model}}
train_dataloader = {{_base_.tiny_train_dataloader}}
val_dataloader = {{_base_.tiny_test_dataloader}}
test_dataloader = {{_base_.tiny_test_dataloader}}
param_scheduler = {{_base_.tiny_param_scheduler}}
train_cfg = {{_base_.tiny_train_cfg}}
default_hooks = {{_base_.tiny_default_hooks}}
crop_size = (64, 64)
load_from = None
