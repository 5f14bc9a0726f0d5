# Single-task reference for Δm: semseg alone on the synthetic dataset, 1400 iterations like the demo's fair static model and AdaMTL's three stages.
# Same backbone, decoder, loss, schedule and data as ../static_swin_synthetic_1400it.py; only the
# task set differs. Train all of a dataset's single-task models and write
# their main metrics for the multi-task configs' Δm with
#   python tools/single_task_baselines.py configs/single_task/static_swin_synthetic_1400it_*.py
_base_ = ['../static_swin_synthetic_1400it.py']
tasks = ['semseg']
model = dict(
    decode_head=dict(tasks=dict(_delete_=True, semseg=dict(out_channels=6))))
train_dataloader = dict(dataset=dict(tasks=tasks))
val_dataloader = dict(dataset=dict(tasks=tasks))
test_dataloader = val_dataloader
