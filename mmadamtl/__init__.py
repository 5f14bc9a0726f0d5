"""mmadamtl: efficient dense multi-task learning for MMSegmentation.

Importing the package registers its datasets, transforms, models, hooks and
metrics in mmseg's registries (scope ``mmseg``), so a config needs only
``custom_imports = dict(imports=['mmadamtl'], allow_failed_imports=False)``.
"""
from .utils import register_safe_globals
from .version import __version__

register_safe_globals()

from . import datasets, engine, evaluation, models  # noqa: E402,F401

__all__ = ['__version__']
