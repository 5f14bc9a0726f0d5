# The embedded synthetic dataset (tools/make_synthetic_dataset.py), PASCAL_MT
# layout plus depth/. 128x128 images.
dataset_type = 'SyntheticMTDataset'
data_root = 'data/synthetic'
tasks = ['semseg', 'human_parts', 'saliency', 'normals', 'edge', 'depth']
crop_size = (128, 128)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='MultiTaskResize', scale=(128, 128), ratio_range=(0.75, 1.5)),
    dict(type='MultiTaskRandomCrop', crop_size=crop_size),
    dict(type='MultiTaskRandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackMultiTaskInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiTaskResize', scale=(128, 128), keep_ratio=True),
    # Loaded after the resize: metrics compare at the original size.
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='PackMultiTaskInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        tasks=tasks,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        tasks=tasks,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# Edges: the BSDS/SEISM benchmark at 25 thresholds (99 in the benchmark;
# on the demo's static model ODS F and AP differ by < 0.3 points, see
# docs/design.md) to keep `make demo` fast.
val_evaluator = dict(type='MultiTaskMetric', edge_thresholds=25)
test_evaluator = val_evaluator
