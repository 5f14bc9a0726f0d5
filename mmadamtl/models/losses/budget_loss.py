"""AdaMTL's compute-budget loss."""
from typing import Optional

import torch
import torch.nn as nn
from mmseg.registry import MODELS


@MODELS.register_module()
class BudgetLoss(nn.Module):
    """Drives the executed compute of an adaptive backbone to a budget.

    ``loss_weight * [mean_i (f_i - b_i)^2 + token_weight *
    mean_i (t_i - t*_i)^2]``, where ``f_i`` is the executed share of the
    blocks' compute of image ``i``, FLOPs-weighted (a block of stage 4
    does not cost what a block of stage 1 costs, and an MLP that runs on
    half the tokens costs half), ``b_i`` its target budget, ``t_i`` the
    executed share of the MLPs' compute and ``t*_i`` ``token_target`` (the
    budget when None). Both fractions come from hard decisions with
    straight-through gradients.

    With ``keep_all=True`` it is AdaMTL's policy pre-training loss, the
    L1 distance of the decisions to "keep everything":
    ``mean(1 - f) + mean(1 - t)``.

    Args:
        loss_weight: lambda (AdaMTL: 1.0).
        token_weight: Weight of the token term (0 switches it off).
        token_target: Fixed target of the token term, or None.
        keep_all: Policy pre-training mode.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 token_weight: float = 0.1,
                 token_target: Optional[float] = None,
                 keep_all: bool = False) -> None:
        super().__init__()
        if token_target is not None and not 0 < token_target <= 1:
            raise ValueError(f'BudgetLoss: token_target must be in (0, 1], '
                             f'got {token_target!r}')
        self.loss_weight = loss_weight
        self.token_weight = token_weight
        self.token_target = token_target
        self.keep_all = keep_all

    def forward(self, stats, budgets: torch.Tensor) -> torch.Tensor:
        """``stats``: the backbone's ``AdaptiveStats``; ``budgets``: (B,)."""
        if self.keep_all:
            loss = (1 - stats.block_fraction).mean() + \
                (1 - stats.token_fraction).mean()
            return self.loss_weight * loss
        loss = ((stats.block_fraction - budgets)**2).mean()
        if self.token_weight:
            target = budgets if self.token_target is None else \
                self.token_target
            loss = loss + self.token_weight * (
                (stats.token_fraction - target)**2).mean()
        return self.loss_weight * loss
