# configs/single_task/ (one task of the static model), tiny, for the test
# suite: depth alone.
_base_ = ['tiny_static_swin_synthetic.py']
tasks = ['depth']
model = dict(
    decode_head=dict(tasks=dict(_delete_=True, depth=dict(out_channels=1))))
train_dataloader = dict(dataset=dict(tasks=tasks))
val_dataloader = dict(dataset=dict(tasks=tasks))
test_dataloader = val_dataloader
