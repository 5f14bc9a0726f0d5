from .complexity import (COMPLEXITY_KEYS, image_complexity,
                         summarize_complexity)
from .controllability import (budget_control, hypervolume,
                              simplex_samples, spearman, uniformity)
from .metrics import *  # noqa: F401,F403

__all__ = [
    'COMPLEXITY_KEYS', 'image_complexity', 'summarize_complexity',
    'budget_control', 'spearman', 'uniformity', 'hypervolume',
    'simplex_samples'
]
