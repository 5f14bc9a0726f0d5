from .adaptive_swin import AdaptiveStats, AdaptiveSwinTransformer, check_budget
from .policy_head import PolicyHead
from .swin_checkpoint import (check_checkpoint_matches,
                              check_pretrained_backbone, convert_official_swin)
from .swin_flops import swin_cost

__all__ = [
    'convert_official_swin', 'check_pretrained_backbone',
    'check_checkpoint_matches', 'AdaptiveSwinTransformer', 'PolicyHead',
    'AdaptiveStats', 'check_budget', 'swin_cost'
]
