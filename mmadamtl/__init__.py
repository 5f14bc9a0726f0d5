"""mmadamtl: efficient dense multi-task learning for MMSegmentation.

Importing the package registers its datasets, transforms, models, hooks and
metrics in mmseg's registries (scope ``mmseg``), so a config needs only
``custom_imports = dict(imports=['mmadamtl'], allow_failed_imports=False)``.
"""
from .utils import register_checkpoint_loader
from .version import __version__

# mmengine reads local checkpoints through our weights-only loader, which
# allows the few globals of mmengine checkpoints for that call only
# (mmadamtl/utils/safe_checkpoint.py).
register_checkpoint_loader()

from . import datasets, engine, evaluation, models  # noqa: E402,F401

__all__ = ['__version__']
