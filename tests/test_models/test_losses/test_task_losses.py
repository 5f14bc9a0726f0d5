import math

import pytest
import torch

from mmadamtl.models.losses import BalancedBCELoss, DepthL1Loss, NormalsL1Loss


def _bce(x, y):
    return -(y * math.log(1 / (1 + math.exp(-x))) +
             (1 - y) * math.log(1 - 1 / (1 + math.exp(-x))))


def test_balanced_bce_against_hand_computation():
    logits = torch.tensor([[[[2.0, -1.0], [0.5, 3.0]]]])
    target = torch.tensor([[[[1, 0], [0, 255]]]])
    # Valid: 3 pixels, 1 positive -> w = 2/3 for positives.
    pos = _bce(2.0, 1)
    neg = _bce(-1.0, 0) + _bce(0.5, 0)
    expected = (2 / 3 * pos + 1 / 3 * neg) / 3
    out = BalancedBCELoss()(logits, target)
    assert out.item() == pytest.approx(expected, rel=1e-5)
    fixed = BalancedBCELoss(pos_weight=0.95, loss_weight=2.0)(logits, target)
    assert fixed.item() == pytest.approx(
        2.0 * (0.95 * pos + 0.05 * neg) / 3, rel=1e-5)
    with pytest.raises(ValueError, match='pos_weight'):
        BalancedBCELoss(pos_weight=1.5)


def test_normals_l1_normalises_and_ignores():
    pred = torch.zeros(1, 3, 1, 2)
    pred[0, :, 0, 0] = torch.tensor([0., 0., 5.])   # -> (0, 0, 1)
    pred[0, :, 0, 1] = torch.tensor([3., 0., 0.])
    target = torch.zeros(1, 3, 1, 2)
    target[0, :, 0, 0] = torch.tensor([1., 0., 0.])
    # pixel 1 ignored (all-zero target)
    out = NormalsL1Loss(loss_weight=1.0)(pred, target)
    assert out.item() == pytest.approx((1 + 0 + 1) / 3)


def test_depth_l1_ignores_zero():
    pred = torch.tensor([[[[1.0, 2.0, 10.0]]]])
    target = torch.tensor([[[[2.0, 2.5, 0.0]]]])
    assert DepthL1Loss()(pred, target).item() == pytest.approx(0.75)
