"""Anneal the training budget and the Gumbel temperature of AdaMTL."""
from typing import Optional, Sequence

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from mmadamtl.models.utils import check_budget


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class BudgetScheduleHook(Hook):
    """Sets the per-image target budgets and the policy's temperature
    before every training iteration.

    Over the first ``anneal_iters`` iterations (or the first
    ``anneal_ratio`` of the run's ``max_iters``, so that one recipe serves
    runs of any length) the target moves linearly from 1.0 (run
    everything) to its final value, and the temperature
    from ``tau[0]`` to ``tau[1]``. With ``budget_range=(lo, hi)``
    (budget-conditioning) each image draws its own budget uniformly from
    the annealed range ``[1 - p (1 - lo), 1 - p (1 - hi)]`` (p the
    progress in [0, 1]); otherwise every image gets the annealed
    ``budget``. With ``per_batch=True`` one budget is drawn per batch and
    given to all its images (for ``BudgetLoss(reduction='batch')``: the
    batch's mean is held to it, its images free around it).

    Args:
        budget: Fixed final budget in (0, 1] (without conditioning).
        budget_range: Final range of budgets in (0, 1] to sample from.
        anneal_iters: Iterations of the anneal (0: no anneal).
        anneal_ratio: The anneal's share of the run's iterations, in
            [0, 1]; instead of ``anneal_iters``.
        tau: Start and end temperature.
        per_batch: One budget per batch instead of one per image.
        seed: Seed of the sampler of budgets. The budgets of iteration
            ``it`` on rank ``r`` are drawn from a generator seeded by
            ``(seed, r, it)``: ranks draw different budgets, and a resumed
            run draws what the uninterrupted one would have.
    """
    priority = 'NORMAL'

    def __init__(self,
                 budget: Optional[float] = None,
                 budget_range: Optional[Sequence[float]] = None,
                 anneal_iters: int = 0,
                 anneal_ratio: Optional[float] = None,
                 tau: Sequence[float] = (5.0, 5.0),
                 per_batch: bool = False,
                 seed: int = 0) -> None:
        if (budget is None) == (budget_range is None):
            raise ValueError('BudgetScheduleHook: give exactly one of '
                             'budget and budget_range')
        if budget_range is not None:
            if len(budget_range) != 2 or budget_range[0] > budget_range[1]:
                raise ValueError(f'BudgetScheduleHook: budget_range must be '
                                 f'(low, high), got {budget_range!r}')
            lo, hi = (check_budget(float(b), 'BudgetScheduleHook.'
                                   'budget_range') for b in budget_range)
        else:
            lo = hi = check_budget(budget, 'BudgetScheduleHook.budget')
        if anneal_iters < 0:
            raise ValueError(f'BudgetScheduleHook: anneal_iters must be >= '
                             f'0, got {anneal_iters}')
        if anneal_ratio is not None:
            if anneal_iters:
                raise ValueError('BudgetScheduleHook: give anneal_iters or '
                                 'anneal_ratio, not both')
            if not 0 <= anneal_ratio <= 1:
                raise ValueError(f'BudgetScheduleHook: anneal_ratio must be '
                                 f'in [0, 1], got {anneal_ratio!r}')
        if len(tau) != 2 or min(tau) <= 0:
            raise ValueError(f'BudgetScheduleHook: tau must be (start, end) '
                             f'> 0, got {tau!r}')
        self.low, self.high = lo, hi
        self.anneal_iters = anneal_iters
        self.anneal_ratio = anneal_ratio
        self.tau = tuple(float(t) for t in tau)
        self.per_batch = bool(per_batch)
        self.seed = int(seed)

    def generator(self, it: int) -> torch.Generator:
        """The budget sampler of iteration ``it`` on this rank."""
        seed = (self.seed * 1000003 + get_rank()) * 1000003 + it
        return torch.Generator().manual_seed(seed % (2**63))

    def before_train(self, runner) -> None:
        if self.anneal_ratio is not None:
            self.anneal_iters = round(self.anneal_ratio * runner.max_iters)

    def progress(self, it: int) -> float:
        if self.anneal_iters == 0:
            return 1.0
        return min(1.0, it / self.anneal_iters)

    def current(self, it: int):
        """(low, high, tau) at iteration ``it``."""
        p = self.progress(it)
        low = 1 - p * (1 - self.low)
        high = 1 - p * (1 - self.high)
        tau = self.tau[0] + p * (self.tau[1] - self.tau[0])
        return low, high, tau

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        model = _unwrap(runner.model)
        if not getattr(model, 'adaptive', False):
            raise RuntimeError('BudgetScheduleHook needs a model with an '
                               'adaptive backbone')
        low, high, tau = self.current(runner.iter)
        model.set_policy_temperature(tau)
        batch = len(data_batch['inputs']) if data_batch else 1
        u = torch.rand(1 if self.per_batch else batch,
                       generator=self.generator(runner.iter)).expand(batch)
        model.set_train_budgets(low + (high - low) * u)
        runner.message_hub.update_scalar('train/tau', tau)
