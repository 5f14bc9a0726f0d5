"""Checks and per-image tensors of compute budgets."""
from typing import Union

import torch

from mmadamtl.utils.host_sync import tracing

Budget = Union[None, float, torch.Tensor]


def check_budget(budget: Budget, where: str = 'budget') -> Budget:
    """``budget`` must be None (run every block) or in (0, 1], a number or
    a tensor of per-image budgets.

    Raises:
        ValueError: Naming ``where`` and the bad values.
    """
    if budget is None:
        return None
    if isinstance(budget, torch.Tensor):
        if tracing():
            # A graph input: its values are not known while tracing and
            # the graph cannot raise (``target`` mode clamps requests to
            # the measured curve, ``input`` mode takes them as they are;
            # docs/deploy.md).
            return budget
        # One read of the device (NaN fails both comparisons).
        if not bool(((budget > 0) & (budget <= 1)).all()):
            bad = budget[(budget <= 0) | (budget > 1) | budget.isnan()]
            raise ValueError(f'{where}: budgets must lie in (0, 1], got '
                             f'{bad.tolist()}')
        return budget
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) \
            or not 0 < budget <= 1:
        raise ValueError(f'{where} must be None (run every block) or a '
                         f'number in (0, 1], got {budget!r}')
    return float(budget)


def budget_tensor(budget: Union[float, torch.Tensor],
                  x: torch.Tensor) -> torch.Tensor:
    """Checked (B,) budgets for the batch ``x``, on its device and dtype: a
    number, a 0-d tensor, or one budget per image.

    Raises:
        ValueError: A tensor of another shape (naming it), or budgets
            outside (0, 1].
    """
    batch = x.shape[0]
    if isinstance(budget, torch.Tensor):
        if budget.dim() == 0:
            budget = budget.expand(batch)
        elif tuple(budget.shape) != (batch, ):
            raise ValueError(
                f'budget: one per image, a tensor of shape ({batch},) for '
                f'this batch of {batch} (or a number), got shape '
                f'{tuple(budget.shape)}')
    check_budget(budget)
    if not isinstance(budget, torch.Tensor):
        budget = x.new_full((batch, ), budget)
    return budget.to(x.device, x.dtype)
