"""The deployment search: the width rule, the search within budget and
the evolutionary search."""

import numpy as np
import pytest

from mmadamtl.models.utils.controllable_search import (LookupTable,
                                                       decoder_widths,
                                                       evolution_search,
                                                       search_subnet)


def test_decoder_width_rule():
    widths = [0.25, 0.5, 0.75, 1.0]
    got = decoder_widths(dict(a=0.5, b=0.2, c=0.3, d=0.0), widths)
    # r / max r = 1, 0.4, 0.6, 0 -> 1.0, 0.5, 0.75, off.
    assert got == dict(a=1.0, b=0.5, c=0.75, d=0.0)


def _table(tasks, encoders, widths, seed=0):
    rng = np.random.default_rng(seed)
    metrics = {t: (50 + 40 * rng.random((len(encoders), len(widths))))
               .tolist() for t in tasks}
    return LookupTable(tasks=tasks, widths=widths,
                       encoders=[[list(s) for s in e] for e in encoders],
                       metrics=metrics,
                       reference={t: 90.0 for t in tasks})


def test_search_stays_within_budget_and_follows_preference():
    """Over random preferences and budgets: within budget always, the most
    preferred task's decoder the widest whenever any configuration with
    it fits, and too small a budget is an error naming it."""
    tasks = ['semseg', 'saliency', 'edge']
    widths = [0.25, 0.5, 0.75, 1.0]
    encs = [((h, r), ) * 4 for h in (0.5, 1.0) for r in (1., 2., 4.)]
    table = _table(tasks, encs, widths)
    enc_cost = {e: 10 * e[0][0] + 3 * e[0][1] for e in encs}

    def cost(e, decs):
        return enc_cost[tuple(tuple(s) for s in e)] + sum(
            4 * w for w in decs.values())
    max_flops = cost(encs[-1], dict.fromkeys(tasks, 1.0))
    rng = np.random.default_rng(1)
    for _ in range(300):
        r = dict(zip(tasks, rng.dirichlet(np.ones(3))))
        b = float(rng.uniform(0.3, 1.0))
        try:
            res = search_subnet(table, r, b, cost, max_flops)
        except ValueError as e:
            assert f'budget {b}' in str(e)
            cheapest = min(enc_cost.values()) + 4 * 0.25 * 3
            assert b * max_flops < cheapest
            continue
        assert res.flops <= b * max_flops
        assert cost(res.encoder, res.decoders) == res.flops
        top = max(r, key=r.get)
        widest_fits = min(enc_cost.values()) + sum(
            4 * w for w in decoder_widths(r, widths).values()) <= \
            b * max_flops
        if widest_fits:
            assert res.decoders == decoder_widths(r, widths)
            assert res.decoders[top] == 1.0
            # The best encoder under the budget by the weighted score.
            best = max((sum(r[t] * table.score(t, i, res.decoders[t])
                            for t in tasks), -cost(e, res.decoders))
                       for i, e in enumerate(encs)
                       if cost(e, res.decoders) <= b * max_flops)
            assert res.score == pytest.approx(best[0])
        else:
            # Narrower decoders for the others, chosen by measured score:
            # the brute-force best with the most preferred task's width
            # kept.
            import itertools
            rule = decoder_widths(r, widths)
            best = max(
                (sum(r[t] * table.score(t, i, d[t]) for t in tasks),
                 -cost(e, d))
                for i, e in enumerate(encs)
                for combo in itertools.product(
                    *([w for w in widths if w <= rule[t]] if t != top else
                      [rule[t]] for t in tasks))
                for d in [dict(zip(tasks, combo))]
                if cost(e, d) <= b * max_flops) if any(
                    cost(e, dict(rule, **{t: widths[0] for t in tasks
                                          if t != top})) <= b * max_flops
                    for e in encs) else None
            if best is not None:
                assert res.decoders[top] == rule[top]
                assert res.score == pytest.approx(best[0])


def test_evolution_search_finds_best_within_limit():
    choices = [(h, r) for h in (0.5, 1.0) for r in (1., 2., 3., 4.)]
    cost = lambda c: sum(h * 8 + r for h, r in c)  # noqa: E731
    # Fitness grows with width but stage 2 matters most.
    weight = [1, 1, 5, 1]
    fitness = lambda c: sum(w * h * r for w, (h, r) in  # noqa: E731
                            zip(weight, c))
    seen = []

    def tracked(c):
        seen.append(c)
        return fitness(c)
    limit = 40
    best, score = evolution_search(choices, 4, tracked, cost, limit,
                                   population=32, generations=20, seed=0)
    assert all(cost(c) <= limit for c in seen)
    import itertools
    brute = max((fitness(c) for c in itertools.product(choices, repeat=4)
                 if cost(c) <= limit))
    assert cost(best) <= limit and score == brute
