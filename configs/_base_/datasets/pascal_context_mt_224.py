# PASCAL-Context multi-task at the official AdaMTL code's 224x224 input
# (the package's main PASCAL configs use 512x512).
_base_ = ['pascal_context_mt.py']
crop_size = (224, 224)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='MultiTaskResize', scale=(224, 224), ratio_range=(0.5, 2.0)),
    dict(type='MultiTaskRandomCrop', crop_size=crop_size),
    dict(type='MultiTaskRandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackMultiTaskInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiTaskResize', scale=(224, 224), keep_ratio=True),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='PackMultiTaskInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
