from .base_mt import BaseMTDataset
from .nyud_mt import NYUDMTDataset
from .pascal_context_mt import PascalContextMTDataset
from .synthetic import SyntheticMTDataset, make_synthetic_dataset
from .transforms import *  # noqa: F401,F403

__all__ = [
    'BaseMTDataset', 'PascalContextMTDataset', 'NYUDMTDataset',
    'SyntheticMTDataset', 'make_synthetic_dataset'
]
