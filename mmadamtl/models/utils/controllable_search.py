"""Deployment search of the controllable model: (task preference, compute
budget) -> encoder sub-network and decoder widths.

Following "Efficient Controllable Multi-Task Architectures" (Aich et al.,
ICCV 2023): each task's decoder width follows its preference, the most
preferred task's decoder widest, and the shared encoder is the
sub-network that maximises the preference-weighted score within the
budget. Scores come from a :class:`LookupTable` measured offline on a
held-out split (``tools/controllable.py table``); costs are computed for
the actual input size, so a returned configuration is within budget by
construction.
"""
import itertools
import json
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmadamtl.utils import TASKS, check_tasks
from mmadamtl.utils.safe_io import write_json

TABLE_FORMAT = 'mmadamtl-controllable-lookup-table'
TABLE_VERSION = 1
# Multiply-adds of (encoder config, {task: width}), 0 width = task off.
CostFn = Callable[[tuple, Dict[str, float]], float]


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(
        value, bool) and bool(np.isfinite(value))


def check_preference(preference: Dict[str, float],
                     tasks: Sequence[str]) -> Dict[str, float]:
    """A task preference: non-negative weights of known tasks, not all
    zero, normalised to sum 1 (tasks not named get 0)."""
    if not isinstance(preference, dict) or not preference:
        raise ValueError(f'preference must be a dict task -> weight, got '
                         f'{preference!r}')
    check_tasks(preference, tasks, where='preference')
    for task, value in preference.items():
        if not np.isfinite(value) or value < 0:
            raise ValueError(f'preference[{task!r}] must be a finite '
                             f'weight >= 0, got {value!r}')
    total = float(sum(preference.values()))
    if total <= 0:
        raise ValueError(f'preference {preference} has no positive weight')
    return {t: float(preference.get(t, 0.0)) / total for t in tasks}


def decoder_widths(preference: Dict[str, float],
                   widths: Sequence[float]) -> Dict[str, float]:
    """The paper's rule: task t's decoder gets the smallest width >=
    r_t / max_j r_j (the most preferred task the widest); r_t = 0 turns
    the task off (width 0)."""
    top = max(preference.values())
    out = {}
    for task, r in preference.items():
        if r <= 0:
            out[task] = 0.0
            continue
        need = r / top - 1e-9
        out[task] = next(w for w in widths if w >= need)
    return out


@dataclass
class LookupTable:
    """Per encoder sub-network and decoder width, each task's main metric
    on a held-out split (a task's output depends only on the encoder and
    its own decoder's width), saved as JSON next to the checkpoint.

    Attributes:
        tasks: Tasks measured.
        widths: Decoder width multipliers (increasing).
        encoders: Encoder sub-networks, each per stage (head fraction,
            mlp ratio).
        metrics: ``metrics[task][e][d]``: the task's main metric with
            encoder ``e`` and decoder width ``widths[d]``.
        reference: Each task's metric at the widest configuration (the
            normalisation of the scores).
        gflops: ``{'encoders': [...], 'decoders': {task: [...]}}`` at
            ``img_size`` (for reading; the search recomputes costs for
            the input it runs on).
        source: What was measured (config, checkpoint, split, images).
    """
    tasks: List[str]
    widths: List[float]
    encoders: List[list]
    metrics: Dict[str, List[List[float]]]
    reference: Dict[str, float]
    gflops: dict = field(default_factory=dict)
    img_size: List[int] = field(default_factory=list)
    source: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.encoders = [tuple(tuple(float(v) for v in s) for s in e)
                         for e in self.encoders]
        self.widths = [float(w) for w in self.widths]
        for key in ('tasks', 'widths', 'encoders'):
            if not getattr(self, key):
                raise ValueError(f'lookup table: {key} is empty; a table '
                                 f'needs at least one')
        split = self.source.get('split') if isinstance(self.source,
                                                       dict) else None
        measured_on = f' (measured on {split})' if split else ''
        for task in self.tasks:
            if task not in TASKS:
                raise ValueError(f'lookup table: unknown task {task!r}')
            rows = self.metrics.get(task)
            if rows is None or len(rows) != len(self.encoders) or any(
                    len(r) != len(self.widths) for r in rows):
                raise ValueError(
                    f'lookup table: metrics[{task!r}] must be '
                    f'{len(self.encoders)} x {len(self.widths)} values')
            if task not in self.reference:
                raise ValueError(f'lookup table: reference[{task!r}] is '
                                 f'missing')
            values = [(f'metrics[{task!r}][{e}][{d}]', v)
                      for e, row in enumerate(rows)
                      for d, v in enumerate(row)]
            values.append((f'reference[{task!r}]', self.reference[task]))
            for name, value in values:
                if not _finite(value):
                    raise ValueError(
                        f'lookup table: {name} ({TASKS[task].main_key}) is '
                        f'{value!r}{measured_on}, not a finite number: the '
                        f'split gives the task nothing to evaluate (e.g. '
                        f'no annotated pixel of it); measure the table on '
                        f'images that have {task} annotations')

    def score(self, task: str, encoder: int, width: float) -> float:
        """Normalised score: the relative gain of the task's metric over
        the widest configuration's (the Δm convention; <= 0 mostly)."""
        return self.gain(
            task, self.metrics[task][encoder][self.widths.index(width)])

    def gain(self, task: str, value: float) -> float:
        """Relative gain of ``value`` over the task's reference; with a
        reference of 0 (an untrained model), the gain in the metric's own
        units."""
        from mmadamtl.evaluation.metrics.multi_task_metric import \
            relative_gain
        ref = self.reference[task] or 1.0
        return relative_gain(task, value - self.reference[task] + ref, ref)

    def save(self, path: str, **write) -> None:
        """Write the table as standard JSON, atomically; ``write``:
        :func:`mmadamtl.utils.safe_io.atomic_write`'s ``inputs`` and
        ``overwrite`` (an existing file is kept unless it is True)."""
        write_json(path, dict(format=TABLE_FORMAT, version=TABLE_VERSION,
                              **asdict(self)), indent=1,
                   what='lookup table', **write)

    @classmethod
    def load(cls, path: str) -> 'LookupTable':
        """Read a table written by :meth:`save` (plain JSON, no code)."""
        if not osp.isfile(path):
            raise FileNotFoundError(f'lookup table {path} does not exist; '
                                    f'build it with tools/controllable.py '
                                    f'table')
        try:
            with open(path) as f:
                data = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f'lookup table {path} is not JSON: {e}') from e
        if not isinstance(data, dict) or data.get('format') != TABLE_FORMAT:
            raise ValueError(f'{path} is not a controllable lookup table '
                             f'(format {TABLE_FORMAT!r})')
        if data.get('version') != TABLE_VERSION:
            raise ValueError(f'lookup table {path}: version '
                             f'{data.get("version")!r}, expected '
                             f'{TABLE_VERSION}')
        data.pop('format')
        data.pop('version')
        try:
            return cls(**data)
        except TypeError as e:
            raise ValueError(f'lookup table {path}: {e}') from e
        except ValueError as e:
            raise ValueError(f'{path}: {e}') from e


@dataclass
class SearchResult:
    encoder: tuple
    decoders: Dict[str, float]
    score: float
    flops: float
    budget_flops: float


def search_subnet(table: LookupTable, preference: Dict[str, float],
                  budget: float, cost: CostFn,
                  max_flops: float,
                  encoders: Optional[Sequence[int]] = None) -> SearchResult:
    """The configuration for ``preference`` (normalised, over
    ``table.tasks``) within ``budget`` x ``max_flops``.

    Decoder widths follow :func:`decoder_widths`; among the table's
    encoders (or the indices ``encoders``) that fit the budget with them,
    the one with the highest preference-weighted score
    ``sum_t r_t * score_t(e, d_t)`` wins (ties: the cheaper). If none
    fits, the other tasks' decoders may be narrower than the rule's
    widths (the most preferred task's stays the widest it can), and the
    encoder and widths with the best measured score within the budget
    win. ``cost`` must be additive over the encoder and the decoders.

    Raises:
        ValueError: the budget is below the cheapest configuration.
    """
    if not 0 < budget <= 1:
        raise ValueError(f'budget must be in (0, 1], got {budget!r}')
    limit = budget * max_flops
    widths = table.widths
    rule = decoder_widths(preference, widths)
    candidates = list(range(len(table.encoders)) if encoders is None else
                      encoders)
    active = [t for t in rule if rule[t] > 0]
    off = dict.fromkeys(rule, 0.0)
    enc_cost = {e: cost(table.encoders[e], off) for e in candidates}
    base = enc_cost[candidates[0]]
    dec_cost = {t: {w: cost(table.encoders[candidates[0]],
                            dict(off, **{t: w})) - base for w in widths}
                for t in active}
    score = {(t, e, w): preference[t] * table.score(t, e, w)
             for t in active for e in candidates for w in widths}

    def best_for(options: Dict[str, List[float]]):
        best = None
        for combo in itertools.product(*(options[t] for t in active)):
            decs = dict(zip(active, combo))
            dflops = sum(dec_cost[t][w] for t, w in decs.items())
            for e in candidates:
                flops = enc_cost[e] + dflops
                if flops > limit * (1 + 1e-12):
                    continue
                key = (sum(score[t, e, w] for t, w in decs.items()),
                       -flops)
                if best is None or key > best[0]:
                    best = (key, e, decs, flops)
        return best

    top = max(active, key=lambda t: (preference[t], t))
    below = {t: [w for w in widths if w <= rule[t]] for t in active}
    found = (best_for({t: [rule[t]] for t in active})
             or best_for(dict(below, **{top: [rule[top]]}))
             or best_for(below))
    if found is None:
        cheapest = min(enc_cost.values()) + sum(
            dec_cost[t][widths[0]] for t in active)
        raise ValueError(
            f'budget {budget} ({limit / 1e9:.4f} GFLOPs) is below the '
            f'cheapest configuration for preference '
            f'{ {t: round(r, 3) for t, r in preference.items()} }: '
            f'{cheapest / 1e9:.4f} GFLOPs = '
            f'{cheapest / max_flops:.3f} of the widest model')
    (value, _), e, decs, flops = found
    return SearchResult(table.encoders[e], dict(off, **decs), value, flops,
                        limit)


def evolution_search(stage_choices: Sequence[tuple], num_stages: int,
                     fitness: Callable[[tuple], float],
                     cost: Callable[[tuple], float], limit: float,
                     population: int = 50, generations: int = 20,
                     mutation: float = 0.3, seed: int = 0,
                     init: Sequence[tuple] = ()) -> Tuple[tuple, float]:
    """Evolutionary search over per-stage encoder choices (as in HAT and
    mmrazor's ``EvolutionSearchLoop``): keep the best quarter, refill with
    mutations (each stage redrawn with probability ``mutation``) and
    uniform crossovers of the kept ones; every candidate within ``limit``
    (by ``cost``). Returns the best candidate and its fitness. Seeded by
    its own generator.
    """
    rng = np.random.default_rng(seed)
    choices = list(stage_choices)
    scores: Dict[tuple, float] = {}

    def draw() -> tuple:
        return tuple(choices[i]
                     for i in rng.integers(len(choices), size=num_stages))

    def admit(cand: tuple, pool: list) -> None:
        if cand in pool or cost(cand) > limit:
            return
        if cand not in scores:
            scores[cand] = fitness(cand)
        pool.append(cand)

    pool: List[tuple] = []
    for cand in init:
        admit(tuple(cand), pool)
    for _ in range(population * 20):
        if len(pool) >= population:
            break
        admit(draw(), pool)
    if not pool:
        raise ValueError(f'no encoder configuration within {limit / 1e9:.4f} '
                         f'GFLOPs')
    keep = max(2, population // 4)
    for _ in range(generations):
        parents = sorted(pool, key=lambda c: -scores[c])[:keep]
        pool = list(parents)
        for _ in range(population * 20):
            if len(pool) >= population:
                break
            if rng.random() < 0.5:
                p = parents[rng.integers(len(parents))]
                cand = tuple(
                    choices[rng.integers(len(choices))]
                    if rng.random() < mutation else s for s in p)
            else:
                a, b = rng.choice(len(parents), size=2, replace=False)
                cand = tuple(parents[a][i] if rng.random() < 0.5 else
                             parents[b][i] for i in range(num_stages))
            admit(cand, pool)
    # Every scored candidate was admitted within the limit.
    best = max(scores, key=scores.get)
    return best, scores[best]
