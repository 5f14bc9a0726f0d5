import importlib.util
import json
import os.path as osp

from mmadamtl.datasets.synthetic import GENERATOR_VERSION
from tests.conftest import ROOT


def _demo():
    spec = importlib.util.spec_from_file_location(
        'demo', osp.join(ROOT, 'tools', 'demo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stale_synthetic_data_is_regenerated(tiny_synthetic, tmp_path):
    demo = _demo()
    assert demo.synthetic_data_current(tiny_synthetic)
    assert not demo.synthetic_data_current(str(tmp_path))
    (tmp_path / 'meta.json').write_text(
        json.dumps(dict(version=GENERATOR_VERSION - 1)))
    assert not demo.synthetic_data_current(str(tmp_path))


def test_metrics_table():
    table = _demo().metrics_table({'semseg/mIoU': 12.345, 'delta_m': -1.5})
    lines = table.splitlines()
    assert lines[0] == '| task | metric | value |'
    assert lines[2] == '| semseg | mIoU | 12.35 |'
    assert lines[3] == '| delta_m | delta_m | -1.50 |'
