"""CIKDLoss."""

import pytest
import torch
from mmseg.registry import MODELS


def test_cikd_loss_value_and_teacher_detached():
    loss = MODELS.build(dict(type='CIKDLoss', loss_weight=2.0))
    f = [torch.randn(2, 3, 4, 4, requires_grad=True) for _ in range(2)]
    t = [torch.randn(2, 3, 4, 4, requires_grad=True) for _ in range(2)]
    value = loss(f, t)
    expect = 2.0 * sum(((a - b)**2).mean() for a, b in zip(f, t))
    torch.testing.assert_close(value, expect)
    value.backward()
    assert t[0].grad is None and f[0].grad is not None
    with pytest.raises(ValueError, match='differ'):
        loss([torch.zeros(1, 2)], [torch.zeros(1, 3)])
