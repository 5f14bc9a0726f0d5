import os
import os.path as osp

import pytest
import torch
from mmengine.registry import init_default_scope

import mmadamtl  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_CONFIG = osp.join(ROOT, 'tests', 'configs',
                       'tiny_static_swin_synthetic.py')

# Components built outside a Runner resolve their types in mmseg's scope.
init_default_scope('mmseg')
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope='session')
def tiny_synthetic(tmp_path_factory):
    """A tiny generated dataset: 6 train and 4 val images of 64x64."""
    from mmadamtl.datasets import make_synthetic_dataset
    root = str(tmp_path_factory.mktemp('synthetic'))
    make_synthetic_dataset(root, num_train=6, num_val=4, size=64, seed=1)
    return root


@pytest.fixture(scope='session')
def tiny_cfg():
    from mmengine.config import Config
    return Config.fromfile(TINY_CONFIG)
