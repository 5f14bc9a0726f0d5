from .backbones import *  # noqa: F401,F403
from .data_preprocessor import MultiTaskDataPreProcessor
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403

__all__ = ['MultiTaskDataPreProcessor']
