"""No NaN passes as a result: non-finite inputs, empty batches, malformed
budgets and lookup tables are errors naming the culprit (issue points 2,
6 and 11)."""
import copy
import json

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS

from mmadamtl.apis import random_batch
from mmadamtl.models.backbones import Control
from mmadamtl.models.utils.controllable_search import (LookupTable,
                                                       search_subnet)
from tests.conftest import ROOT

CONFIGS = f'{ROOT}/tests/configs'
MODELS_ = ['tiny_static_swin_synthetic', 'tiny_adamtl_swin_synthetic',
           'tiny_mtlora_swin_synthetic', 'tiny_controllable_swin_synthetic']


def _model(name, **test_cfg):
    cfg = copy.deepcopy(Config.fromfile(f'{CONFIGS}/{name}.py').model)
    cfg.test_cfg = dict(cfg.get('test_cfg') or {}, **test_cfg)
    if name.startswith('tiny_controllable'):
        cfg.test_cfg.pop('budget', None)
        cfg.test_cfg.pop('budget_mode', None)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('name', MODELS_)
def test_non_finite_input_is_refused_naming_the_image(name):
    """Point 6: a NaN image would give NaN maps, labels that mean nothing
    and (AdaMTL) every block skipped."""
    model = _model(name)
    batch = random_batch(model, 2, (64, 64))
    batch['data_samples'][1].set_metainfo(dict(img_path='data/x/b.jpg'))
    batch['inputs'][1, 0, 3, 3] = float('nan')
    with torch.no_grad(), pytest.raises(
            ValueError, match=r'predict: 1 input image\(s\) hold NaN or '
            r'infinite values: data/x/b.jpg'):
        model.predict(batch['inputs'], batch['data_samples'])
    # The documented switch passes it through.
    model = _model(name, check_finite=False)
    with torch.no_grad():
        out = model.predict(batch['inputs'], batch['data_samples'])
    assert len(out) == 2


def test_non_finite_training_batch_is_refused():
    model = _model('tiny_adamtl_swin_synthetic').train()
    batch = random_batch(model, 2, (64, 64))
    batch['inputs'][0] = float('inf')
    with pytest.raises(ValueError, match=r'loss: 1 input image'):
        model.loss(batch['inputs'], batch['data_samples'])


def test_empty_batch_and_bad_budget_shapes_are_named():
    """Point 11: a batch of 0 images; a budget tensor with more than one
    element per image."""
    model = _model('tiny_adamtl_swin_synthetic')
    with torch.no_grad(), pytest.raises(ValueError, match=r'B >= 1, got '
                                        r'shape \(0, 3, 64, 64\)'):
        model.predict(torch.zeros(0, 3, 64, 64))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(), pytest.raises(
            ValueError, match=r'a tensor of shape \(2,\) for this batch of '
            r'2 \(or a number\), got shape \(2, 2\)'):
        model.backbone(x, Control(budget=torch.full((2, 2), 0.5),
                                  budget_mode='input'))
    with torch.no_grad():
        a = model.backbone(x, Control(budget=torch.tensor(0.5),
                                      budget_mode='input'))
        b = model.backbone(x, Control(budget=0.5, budget_mode='input'))
    assert all(torch.equal(p, q) for p, q in zip(a, b))


def _table(metrics=None, **kw):
    enc = [[[1.0, 4.0]] * 4, [[0.5, 1.0]] * 4]
    data = dict(tasks=['semseg', 'human_parts'], widths=[0.5, 1.0],
                encoders=enc,
                metrics=metrics or dict(semseg=[[60., 70.], [40., 50.]],
                                        human_parts=[[30., 35.],
                                                     [20., 25.]]),
                reference=dict(semseg=70., human_parts=35.),
                source=dict(split='lookup_dataloader'))
    data.update(kw)
    return data


def test_lookup_table_with_nan_is_refused_at_write_and_load(tmp_path):
    """Point 2: a NaN (no annotated person in the held-out split) picked
    the narrowest encoder at every budget; now the table is refused,
    naming the metric and the split."""
    bad = _table(metrics=dict(semseg=[[60., 70.], [40., 50.]],
                              human_parts=[[float('nan')] * 2] * 2))
    with pytest.raises(ValueError, match=r"metrics\['human_parts'\]\[0\]"
                       r"\[0\] \(human_parts/mIoU\) is nan \(measured on "
                       r"lookup_dataloader\)"):
        LookupTable(**bad)
    # Written by another program: refused at load too.
    path = tmp_path / 'table.json'
    good = LookupTable(**_table())
    good.save(str(path))
    data = json.loads(path.read_text())
    data['metrics']['human_parts'][1][0] = float('nan')
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r'table.json: .*\[1\]\[0\].* nan'):
        LookupTable.load(str(path))
    data['encoders'] = []
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match='encoders is empty'):
        LookupTable.load(str(path))
    # Saving never replaces a table silently.
    with pytest.raises(FileExistsError, match='table.json exists'):
        good.save(str(path))


def test_search_on_a_valid_table_takes_the_widest_at_budget_one():
    table = LookupTable(**_table())
    costs = {0: 10., 1: 4.}
    found = search_subnet(
        table, dict(semseg=0.5, human_parts=0.5), 1.0,
        lambda e, d: costs[table.encoders.index(tuple(e))] + sum(d.values()),
        12.)
    assert found.encoder == table.encoders[0]
    assert np.isfinite(found.score)
