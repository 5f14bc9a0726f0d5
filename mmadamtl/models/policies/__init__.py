from .calibration import (calibrate_budget, calibrate_policy,
                          mixed_keep_rate, policy_budget)
from .policy_head import (CALIBRATION_GRID, BlockSelector, BudgetTerms,
                          PolicyHead, TokenSelector, budget_feature,
                          gumbel_sigmoid, straight_through)
from .random_policy import RandomDecisions

__all__ = [
    'PolicyHead', 'BlockSelector', 'TokenSelector', 'gumbel_sigmoid',
    'straight_through', 'budget_feature', 'calibrate_policy',
    'calibrate_budget', 'policy_budget', 'CALIBRATION_GRID',
    'mixed_keep_rate', 'RandomDecisions', 'BudgetTerms'
]
