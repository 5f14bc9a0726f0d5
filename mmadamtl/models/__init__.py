from .backbones import *  # noqa: F401,F403
from .data_preprocessor import MultiTaskDataPreProcessor
from .heads import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .policies import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403

__all__ = ['MultiTaskDataPreProcessor']
