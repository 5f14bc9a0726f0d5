from .calibration import calibrate_policy
from .policy_head import (BlockSelector, PolicyHead, TokenSelector,
                          budget_feature, gumbel_sigmoid, straight_through)

__all__ = [
    'PolicyHead', 'BlockSelector', 'TokenSelector', 'gumbel_sigmoid',
    'straight_through', 'budget_feature', 'calibrate_policy'
]
