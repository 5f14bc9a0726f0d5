default_scope = 'mmseg'
# Registers mmadamtl's components; lets mmseg's own tools/train.py run these
# configs too.
custom_imports = dict(imports=['mmadamtl'], allow_failed_imports=False)
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='Visualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
# The standard hooks (as mmdet's and mmpretrain's default_runtime hold
# them); leaf configs set checkpoint.interval to their val_interval.
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # mmengine's CheckpointHook, written so that a kill leaves a usable
    # checkpoint (temporary file and rename; the oldest removed after).
    checkpoint=dict(
        type='AtomicCheckpointHook', by_epoch=False, interval=4000,
        max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Gumbel noise and drop path seeded by (seed, rank, iteration): a
    # resumed run trains exactly as the uninterrupted one.
    iter_seed=dict(type='IterSeedHook'),
    # A run whose loss is non-finite, or whose every AMP step is skipped,
    # for 20 iterations in a row stops with an error naming the terms.
    learning_guard=dict(type='LearningGuardHook', patience=20),
)
