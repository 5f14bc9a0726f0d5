from .formatting import PackMultiTaskInputs
from .loading import LoadMultiTaskAnnotations
from .transforms import (MultiTaskRandomCrop, MultiTaskRandomFlip,
                         MultiTaskResize)

__all__ = [
    'LoadMultiTaskAnnotations', 'MultiTaskResize', 'MultiTaskRandomCrop',
    'MultiTaskRandomFlip', 'PackMultiTaskInputs'
]
