# PASCAL-Context multi-task (PASCAL_MT layout), 512x512 crops.
dataset_type = 'PascalContextMTDataset'
data_root = 'data/PASCAL_MT'
tasks = ['semseg', 'human_parts', 'saliency', 'normals', 'edge']
crop_size = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='MultiTaskResize', scale=(512, 512), ratio_range=(0.5, 2.0)),
    dict(type='MultiTaskRandomCrop', crop_size=crop_size),
    dict(type='MultiTaskRandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackMultiTaskInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiTaskResize', scale=(512, 512), keep_ratio=True),
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
# Δm needs single-task models of this backbone, decoder and schedule:
#   python tools/single_task_baselines.py \
#       configs/single_task/static_swin_pascal_*.py \
#       --work-dir-root work_dirs/single_task_pascal \
#       --out work_dirs/single_task_pascal/baselines.json
# then evaluate with
#   --cfg-options test_evaluator.single_task_baselines=work_dirs/single_task_pascal/baselines.json
# (or set it here). Edges: the BSDS/SEISM benchmark with the PASCAL-Context
# tolerance, 0.0075 x the diagonal.
val_evaluator = dict(type='MultiTaskMetric', edge_tolerance=0.0075)
test_evaluator = val_evaluator
