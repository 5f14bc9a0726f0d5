# PASCAL-Context multi-task at the official AdaMTL code's 224x224 input
# (the package's main PASCAL configs use 512x512): the 512x512 pipelines
# with the resize scales and the crop at 224.
_base_ = ['pascal_context_mt.py']
crop_size = (224, 224)


def _at_224(pipeline):
    sizes = dict(MultiTaskResize=dict(scale=crop_size),
                 MultiTaskRandomCrop=dict(crop_size=crop_size))
    return [dict(t, **sizes.get(t['type'], {})) for t in pipeline]


train_pipeline = _at_224(_base_.train_pipeline)
test_pipeline = _at_224(_base_.test_pipeline)
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
