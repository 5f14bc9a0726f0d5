"""AdaMTL's compute-budget loss."""
from typing import Optional

import torch
import torch.nn as nn
from mmseg.registry import MODELS

from ..utils.precision import as_float32, full_precision


@MODELS.register_module()
class BudgetLoss(nn.Module):
    """Drives the executed compute of an adaptive backbone to a budget.

    ``loss_weight * [mean_i (f_i - b_i)^2 + token_weight *
    mean_i (t_i - t*_i)^2]`` (``reduction='image'``), where ``f_i`` is
    the executed share of the blocks' compute of image ``i``,
    FLOPs-weighted (a block of stage 4 does not cost what a block of
    stage 1 costs, and an MLP that runs on half the tokens costs half),
    ``b_i`` its target budget, ``t_i`` the executed share of the MLPs'
    compute and ``t*_i`` ``token_target`` (the budget when None). Both
    fractions come from hard decisions with straight-through gradients.

    The straight-through fractions come from Gumbel-noised decisions, and
    inference runs the noise-free ones (``logit > 0``), which a fit of
    the noised fractions leaves off the budget. ``deterministic_weight``
    adds ``mean_i (d_i - b_i)^2`` on ``d_i``, the fraction the noise-free
    decisions execute (with gradients): the decisions inference runs are
    trained towards the budget too.

    ``reduction='batch'`` drives the batch's mean to the batch's mean
    budget instead, ``(mean_i f_i - mean_i b_i)^2`` (and likewise for
    the other terms): with one budget per batch
    (``BudgetScheduleHook(per_batch=True)``) each image is free to take
    more or less than the budget, so the policy can move compute from
    easy images to hard ones.

    ``mode='count'`` is AdaMTL's own loss: ``loss_weight *
    [mean_i (n_b - block_target)^2 + token_weight *
    mean_i (n_t - token_target)^2]`` (AdaMTL: both weights 1), with
    ``n_b`` the share of blocks kept (by count) and ``n_t`` the share of
    MLP tokens run, AdaMTL's ``get_tokens_select_stats``: block ``k``'s
    share weighted by ``w_k N_k``, its token count ``N_k`` when
    ``token_count_weighted`` times its width ``w_k`` when
    ``width_weighted`` (AdaMTL's 96/192/384/768 for Swin-T), i.e.
    ``sum_k w_k n_k / sum_k w_k N_k`` with ``n_k`` the tokens block ``k``
    ran. Its targets are fixed; the training budgets are not used.

    With ``keep_all=True`` it is AdaMTL's policy pre-training loss, the
    L1 distance of the decisions to "keep everything":
    ``mean(1 - f) + mean(1 - t)``.

    Args:
        loss_weight: lambda (AdaMTL: 1.0).
        token_weight: Weight of the token term (0 switches it off).
        token_target: Fixed target of the token term, or None (the budget;
            ``mode='count'``: 0.5).
        keep_all: Policy pre-training mode.
        deterministic_weight: Weight of the noise-free decisions' term.
        mode: ``'flops'`` (FLOPs-weighted fractions against the budgets)
            or ``'count'`` (AdaMTL's fixed count targets).
        block_target: Target share of blocks in ``'count'`` mode.
        width_weighted: Weight the token shares by block width in
            ``'count'`` mode.
        token_count_weighted: Weight the token shares by the blocks'
            token counts in ``'count'`` mode (AdaMTL's formula; False: a
            block of stage 4 weighs what a block of stage 1 does).
        reduction: ``'image'`` (every image to its budget) or
            ``'batch'`` (the batch's mean to its mean budget).
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 token_weight: float = 0.1,
                 token_target: Optional[float] = None,
                 keep_all: bool = False,
                 deterministic_weight: float = 0.,
                 mode: str = 'flops',
                 block_target: float = 0.9,
                 width_weighted: bool = True,
                 token_count_weighted: bool = True,
                 reduction: str = 'image') -> None:
        super().__init__()
        if mode not in ('flops', 'count'):
            raise ValueError(f'BudgetLoss: mode must be "flops" or "count", '
                             f'got {mode!r}')
        if reduction not in ('image', 'batch'):
            raise ValueError(f'BudgetLoss: reduction must be "image" or '
                             f'"batch", got {reduction!r}')
        if mode == 'count' and token_target is None:
            token_target = 0.5
        for name, value in (('token_target', token_target),
                            ('block_target', block_target)):
            if value is not None and not 0 < value <= 1:
                raise ValueError(f'BudgetLoss: {name} must be in (0, 1], '
                                 f'got {value!r}')
        if deterministic_weight < 0:
            raise ValueError(f'BudgetLoss: deterministic_weight must be >= '
                             f'0, got {deterministic_weight!r}')
        self.loss_weight = loss_weight
        self.token_weight = token_weight
        self.token_target = token_target
        self.keep_all = keep_all
        self.deterministic_weight = deterministic_weight
        self.mode = mode
        self.block_target = block_target
        self.width_weighted = width_weighted
        self.token_count_weighted = token_count_weighted
        self.reduction = reduction

    def _distance(self, value: torch.Tensor, target) -> torch.Tensor:
        """Mean squared distance of the per-image ``value`` (B,) to
        ``target`` (B,) or a number, per image or on the batch's means
        (``reduction``)."""
        if self.reduction == 'batch':
            target = target.mean() if torch.is_tensor(target) else target
            return (value.mean() - target)**2
        return ((value - target)**2).mean()

    def forward(self, stats, budgets: torch.Tensor) -> torch.Tensor:
        """``stats``: the backbone's ``AdaptiveStats``; ``budgets``: (B,).

        Computed in float32 with autocast off, whatever the autocast dtype
        of the forward pass (``full_precision``)."""
        with full_precision(budgets):
            return self._loss(stats, as_float32(budgets))

    def _loss(self, stats, budgets: torch.Tensor) -> torch.Tensor:
        if self.keep_all:
            # L1 to 1 (every fraction <= 1): the same per image or on
            # the batch's mean.
            loss = (1 - stats.block_fraction).mean() + \
                (1 - stats.token_fraction).mean()
            return self.loss_weight * loss
        if self.mode == 'count':
            return self.loss_weight * self._count_loss(stats)
        loss = self._distance(stats.block_fraction, budgets)
        if self.deterministic_weight:
            if stats.deterministic_fraction is None:
                raise ValueError('BudgetLoss: deterministic_weight needs the '
                                 'noise-free fractions of a training pass')
            loss = loss + self.deterministic_weight * self._distance(
                stats.deterministic_fraction, budgets)
        if self.token_weight:
            target = budgets if self.token_target is None else \
                self.token_target
            loss = loss + self.token_weight * self._distance(
                stats.token_fraction, target)
        return self.loss_weight * loss

    def _count_loss(self, stats) -> torch.Tensor:
        blocks = stats.keeps.mean(1)
        weights = stats.widths if self.width_weighted else \
            torch.ones_like(stats.widths)
        if self.token_count_weighted:
            weights = weights * stats.block_tokens
        tokens = stats.token_shares @ (weights / weights.sum())
        loss = self._distance(blocks, self.block_target)
        if self.token_weight:
            loss = loss + self.token_weight * self._distance(
                tokens, self.token_target)
        return loss
