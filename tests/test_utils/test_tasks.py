"""The task table is the single source: a new task is one row."""
import dataclasses

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmadamtl.evaluation.metrics.multi_task_metric import (MultiTaskMetric,
                                                           delta_m)
from mmadamtl.utils import TASK_BY_FIELD, TASKS, check_tasks


@pytest.fixture
def foreground(monkeypatch):
    """A new binary task added as one row (what editing TASKS does)."""
    spec = dataclasses.replace(
        TASKS['saliency'], name='foreground', gt_field='gt_foreground',
        pred_field='pred_foreground', label='fg maxIoU',
        loss=dict(type='BalancedBCELoss', loss_weight=3.0))
    monkeypatch.setitem(TASKS, 'foreground', spec)
    monkeypatch.setitem(TASK_BY_FIELD, 'gt_foreground', spec)
    return spec


def test_new_task_is_one_row(foreground):
    assert check_tasks(['semseg', 'foreground']) == ['semseg', 'foreground']
    head = MODELS.build(
        dict(type='MultiTaskHead', in_channels=[8, 16, 32, 64],
             decoder=dict(type='AdaMTLDecoder', channels=8),
             tasks=dict(foreground=dict(out_channels=1))))
    # Its default loss comes from its row.
    assert type(head.losses['foreground']).__name__ == 'BalancedBCELoss'
    assert head.losses['foreground'].loss_weight == 3.0
    # The metric dispatches on the row's metric kind: the IoU of a
    # perfect half-image prediction is 100 at every threshold.
    gt = np.zeros((1, 8, 8), np.int64)
    gt[:, :, :4] = 1
    sample = SegDataSample()
    sample.set_field(PixelData(data=torch.from_numpy(gt)), 'gt_foreground')
    sample.set_field(PixelData(data=torch.from_numpy(gt.astype(np.float32))),
                     'pred_foreground')
    metric = MultiTaskMetric(single_task_baselines=dict(foreground=80.))
    metric.process({}, [sample])
    result = metric.compute_metrics(metric.results)
    assert result['foreground/maxIoU'] == pytest.approx(100.)
    assert result['delta_m'] == pytest.approx(25.)


def test_main_metric_and_direction_come_from_the_row():
    metrics = {'normals/mean': 20., 'semseg/mIoU': 55.}
    # normals: lower is better, so 20 against 25 is +20%.
    assert delta_m(metrics, dict(normals=25.)) == pytest.approx(20.)
    assert delta_m(metrics, dict(semseg=50.)) == pytest.approx(10.)
    assert {t: s.main_key for t, s in TASKS.items()} == {
        'semseg': 'semseg/mIoU', 'human_parts': 'human_parts/mIoU',
        'saliency': 'saliency/maxIoU', 'normals': 'normals/mean',
        'edge': 'edge/odsF', 'depth': 'depth/rmse'}
