from .budget import Budget, budget_tensor, check_budget
from .complexity import ComplexityCounter, counted_flops
from .swin_cost import BlockCost, StageCost, SwinCost, swin_cost

__all__ = [
    'Budget', 'check_budget', 'budget_tensor', 'ComplexityCounter',
    'counted_flops', 'BlockCost', 'StageCost', 'SwinCost', 'swin_cost'
]
