import os.path as osp

import pytest
from mmengine.config import Config

from mmadamtl.utils.schedule import scale_schedule
from tests.conftest import ROOT


def _config(name):
    return Config.fromfile(osp.join(ROOT, 'configs', name))


def test_every_iteration_count_scales():
    cfg = scale_schedule(_config('static_swin_synthetic.py'), 0.125)
    # 800 iterations, 100 of warm-up, validation and checkpoint at the end,
    # logs every 50.
    assert cfg.train_cfg.max_iters == 100
    assert cfg.train_cfg.val_interval == 100
    assert cfg.default_hooks.checkpoint.interval == 100
    assert cfg.default_hooks.logger.interval == 6
    warmup, cosine = cfg.param_scheduler
    assert (warmup.begin, warmup.end) == (0, 12)
    assert cosine.begin == 12 and 'end' not in cosine
    # Nothing else of the recipe changes.
    same = _config('static_swin_synthetic.py')
    assert cfg.optim_wrapper == same.optim_wrapper
    assert cfg.model == same.model


def test_counts_stay_positive_and_milestones_scale():
    cfg = Config(dict(
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=40,
                       val_interval=40),
        default_hooks=dict(logger=dict(interval=1)),
        param_scheduler=dict(type='MultiStepLR', by_epoch=False,
                             milestones=[20, 30], begin=0, end=40)))
    scale_schedule(cfg, 0.01)
    assert cfg.train_cfg.max_iters == 1
    assert cfg.default_hooks.logger.interval == 1
    assert cfg.param_scheduler.milestones == [1, 1]
    assert cfg.param_scheduler.begin == 0


@pytest.mark.parametrize('factor', [0, -0.5, 1.5])
def test_bad_factor_is_named(factor):
    with pytest.raises(ValueError, match=str(factor)):
        scale_schedule(_config('static_swin_synthetic.py'), factor)


def test_epoch_based_schedules_are_refused():
    cfg = Config(dict(train_cfg=dict(type='EpochBasedTrainLoop',
                                     max_epochs=12)))
    with pytest.raises(ValueError, match='max_iters'):
        scale_schedule(cfg, 0.5)
    cfg = Config(dict(train_cfg=dict(max_iters=100),
                      param_scheduler=[dict(type='PolyLR')]))
    with pytest.raises(ValueError, match=r'param_scheduler\[0\].*PolyLR'):
        scale_schedule(cfg, 0.5)
