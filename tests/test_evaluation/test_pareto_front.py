import math

import pytest

from mmadamtl.evaluation import aggregate_seeds, mark_fronts, pareto_front


def _row(method, budget, seed, dm, enc=0.1, gflops=0.5, ms=10.0):
    return dict(method=method, budget=budget, seed=seed, delta_m=dm,
                encoder_gflops=enc, gflops=gflops, latency_ms=ms,
                family='x')


def test_aggregate_seeds_mean_and_sample_std():
    rows = [_row('AdaMTL', 0.5, 0, -3.0, enc=0.10, ms=9.0),
            _row('static', None, 0, 0.5),
            _row('AdaMTL', 0.5, 2, -1.0, enc=0.14, ms=12.0),
            _row('AdaMTL', 0.25, 0, -8.0),
            _row('AdaMTL', 0.5, 1, -5.0, enc=0.12, ms=10.5),
            _row('static', None, 1, -0.5)]
    out = aggregate_seeds(rows)
    # One row per (method, budget), in the order first seen.
    assert [(r['method'], r['budget']) for r in out] == [
        ('AdaMTL', 0.5), ('static', None), ('AdaMTL', 0.25)]
    ada = out[0]
    assert ada['seeds'] == [0, 1, 2] and 'seed' not in ada
    assert ada['delta_m'] == pytest.approx(-3.0)
    # Sample standard deviation: sqrt(((0)^2 + 2^2 + 2^2) / (3 - 1)) = 2.
    assert ada['delta_m_std'] == pytest.approx(2.0)
    assert ada['encoder_gflops'] == pytest.approx(0.12)
    assert ada['latency_ms'] == pytest.approx(10.5)
    assert ada['family'] == 'x'
    static = out[1]
    assert static['delta_m'] == pytest.approx(0.0)
    assert static['delta_m_std'] == pytest.approx(math.sqrt(0.5))
    # One seed: no spread to report.
    assert out[2]['delta_m_std'] is None and out[2]['seeds'] == [0]


def test_aggregate_seeds_refuses_a_repeated_seed():
    with pytest.raises(ValueError, match='repeat a seed'):
        aggregate_seeds([_row('static', None, 1, 0.0),
                         _row('static', None, 1, 0.1)])


def test_pareto_front():
    # (cost, score): c is beaten by b (cheaper, better); e ties d in
    # both (both kept); f costs as much as a and scores worse.
    costs = [1.0, 2.0, 3.0, 4.0, 4.0, 1.0]
    scores = [-5.0, -1.0, -2.0, 0.5, 0.5, -6.0]
    assert pareto_front(costs, scores) == [True, True, False, True, True,
                                           False]
    assert pareto_front([1.0], [0.0]) == [True]
    with pytest.raises(ValueError, match='one value of each'):
        pareto_front([1.0, 2.0], [0.0])


def test_mark_fronts_per_cost():
    rows = [dict(delta_m=0.0, encoder_gflops=1.0, latency_ms=5.0),
            dict(delta_m=-1.0, encoder_gflops=0.5, latency_ms=6.0)]
    mark_fronts(rows)
    # Cheaper in GFLOPs, slower and worse in latency.
    assert [r['pareto_encoder_gflops'] for r in rows] == [True, True]
    assert [r['pareto_latency_ms'] for r in rows] == [True, False]
