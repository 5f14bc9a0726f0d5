import os.path as osp

import pytest
import torch

from mmadamtl.utils.timing import device_name


def test_cpu_device_name_names_the_cpu_and_its_instruction_set():
    name = device_name('cpu')
    suffix = f' ({torch.backends.cpu.get_cpu_capability()})'
    assert name.endswith(suffix)
    model = name[:-len(suffix)]
    assert model
    if not osp.isfile('/proc/cpuinfo'):
        pytest.skip('no /proc/cpuinfo to compare with')
    with open('/proc/cpuinfo', encoding='utf-8') as f:
        assert f'model name\t: {model}\n' in f.read()
