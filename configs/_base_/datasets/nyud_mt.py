# NYUD-v2 multi-task, 480x640.
dataset_type = 'NYUDMTDataset'
data_root = 'data/NYUDv2'
tasks = ['semseg', 'normals', 'edge', 'depth']
crop_size = (480, 640)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='MultiTaskResize', scale=(640, 480), ratio_range=(1.0, 1.5)),
    dict(type='MultiTaskRandomCrop', crop_size=crop_size),
    dict(type='MultiTaskRandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackMultiTaskInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiTaskResize', scale=(640, 480), keep_ratio=True),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='PackMultiTaskInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        tasks=tasks,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        tasks=tasks,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# Δm: write the single-task baselines with tools/single_task_baselines.py
# (configs/single_task/static_swin_nyud_*.py) and pass the file as
# test_evaluator.single_task_baselines (see pascal_context_mt.py).
# Edge matching tolerance 0.011 x the diagonal on NYUD-v2 (ATRC's SEISM
# setting; 0.0075 on PASCAL-Context).
val_evaluator = dict(type='MultiTaskMetric', edge_tolerance=0.011)
test_evaluator = val_evaluator
