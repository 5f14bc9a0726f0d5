from .budget import Budget, budget_tensor, check_budget
from .compile import (CapturedLimitError, compile_static, compiled_copy,
                      strict_recompiles)
from .complexity import ComplexityCounter, counted_flops
from .freeze import freeze_parameters
from .precision import as_float32, full_precision
from .swin_cost import BlockCost, StageCost, SwinCost, swin_cost

__all__ = [
    'Budget', 'check_budget', 'budget_tensor', 'ComplexityCounter',
    'counted_flops', 'CapturedLimitError', 'compile_static', 'compiled_copy',
    'strict_recompiles',
    'freeze_parameters', 'full_precision', 'as_float32', 'BlockCost',
    'StageCost', 'SwinCost', 'swin_cost'
]
