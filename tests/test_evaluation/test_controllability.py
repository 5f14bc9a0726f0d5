"""The controllability measures by hand."""

import numpy as np
import pytest

from mmadamtl.evaluation import (budget_control, hypervolume, spearman,
                                 uniformity)


def test_controllability_measures_by_hand():
    # Equal preference-weighted losses: uniformity 1.
    assert uniformity([0.5, 0.25, 0.25], [1.0, 2.0, 2.0]) == \
        pytest.approx(1.0)
    # r*L = (3, 1): p = (.75, .25); KL to uniform = .75 ln 1.5 + .25 ln .5
    kl = 0.75 * np.log(1.5) + 0.25 * np.log(0.5)
    assert uniformity([0.5, 0.5], [3.0, 1.0]) == pytest.approx(1 - kl)
    # Two points in 2-D against (4, 4): areas 3x1 + 1x3 - 1x1 overlap.
    assert hypervolume([[1, 3], [3, 1]], [4, 4]) == pytest.approx(5.0)
    assert spearman([1, 2, 3, 4], [10, 20, 15, 40]) == pytest.approx(0.8)
    res = budget_control([1.0, 2.0, 3.1], [1.0, 2.5, 3.0])
    assert res['within'] == pytest.approx(2 / 3)
    assert res['mean_rel_gap'] == pytest.approx((0 + 0.2 + 0.1 / 3) / 3)
