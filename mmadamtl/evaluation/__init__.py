from .complexity import (COMPLEXITY_KEYS, image_complexity,
                         summarize_complexity)
from .controllability import (budget_control, hypervolume,
                              simplex_samples, spearman, uniformity)
from .metrics import *  # noqa: F401,F403
from .pareto import aggregate_seeds, mark_fronts, pareto_front

__all__ = [
    'COMPLEXITY_KEYS', 'image_complexity', 'summarize_complexity',
    'budget_control', 'spearman', 'uniformity', 'hypervolume',
    'simplex_samples', 'aggregate_seeds', 'pareto_front', 'mark_fronts'
]
