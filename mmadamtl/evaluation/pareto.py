"""Accuracy-cost trade-offs over training seeds: one row per model and
seed aggregated to mean and spread, and the rows no other row beats."""
from typing import Dict, List, Sequence

import numpy as np

# The per-seed numbers a row's aggregate averages.
MEAN_KEYS = ('delta_m', 'encoder_gflops', 'gflops', 'latency_ms')


def aggregate_seeds(rows: Sequence[dict],
                    key: Sequence[str] = ('method', 'budget')
                    ) -> List[dict]:
    """One row per ``key`` (in the order first seen) from one row per
    model and seed.

    Args:
        rows: Dicts with the ``key`` fields, ``seed`` and the numbers of
            ``MEAN_KEYS``; other fields are taken from the first row of
            a group.

    Returns:
        list[dict]: Each group's first row with the ``MEAN_KEYS`` averaged
        over its seeds, ``seeds`` (sorted) and ``delta_m_std``: the
        sample standard deviation of Δm over the seeds (``ddof=1``; None
        for one seed, where there is no spread to report).

    Raises:
        ValueError: A group holds one seed twice.
    """
    groups: Dict[tuple, List[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in key), []).append(row)
    out = []
    for name, group in groups.items():
        seeds = [r['seed'] for r in group]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f'{dict(zip(key, name))}: seeds {seeds} '
                             f'repeat a seed')
        agg = {k: v for k, v in group[0].items() if k != 'seed'}
        for k in MEAN_KEYS:
            agg[k] = float(np.mean([r[k] for r in group]))
        dm = [r['delta_m'] for r in group]
        agg['delta_m_std'] = float(np.std(dm, ddof=1)) \
            if len(dm) > 1 else None
        agg['seeds'] = sorted(seeds)
        out.append(agg)
    return out


def pareto_front(costs: Sequence[float], scores: Sequence[float]
                 ) -> List[bool]:
    """Whether each point is on the front of lower cost and higher score:
    no other point costs at most as much and scores at least as well,
    better in one of the two (ties in both keep both points)."""
    costs = np.asarray(costs, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if costs.shape != scores.shape or costs.ndim != 1:
        raise ValueError(f'costs {costs.shape} and scores {scores.shape}: '
                         f'one value of each per point')
    front = []
    for c, s in zip(costs, scores):
        beaten = (costs <= c) & (scores >= s) & ((costs < c) | (scores > s))
        front.append(not beaten.any())
    return front


def mark_fronts(rows: List[dict], costs: Sequence[str] = (
        'encoder_gflops', 'latency_ms'), score: str = 'delta_m'
        ) -> List[dict]:
    """Set ``rows[i]['pareto_' + cost]``: whether the row is on the front
    of ``score`` against each of ``costs``; returns ``rows``."""
    for cost in costs:
        front = pareto_front([r[cost] for r in rows],
                             [r[score] for r in rows])
        for r, on in zip(rows, front):
            r[f'pareto_{cost}'] = on
    return rows
