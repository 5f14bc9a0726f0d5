from .complexity import (COMPLEXITY_KEYS, image_complexity,
                         summarize_complexity)
from .metrics import *  # noqa: F401,F403

__all__ = ['COMPLEXITY_KEYS', 'image_complexity', 'summarize_complexity']
