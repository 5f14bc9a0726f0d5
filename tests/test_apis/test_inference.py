"""mmadamtl.apis: the static counterpart of a method's config and the
measurements the tools share."""
import os.path as osp

import torch

from mmadamtl.apis import (init_model, random_batch, static_counterpart,
                           static_variant)
from mmadamtl.apis.benchmark import autocast, executed
from mmadamtl.evaluation import image_complexity
from tests.conftest import ROOT

CONFIGS = osp.join(ROOT, 'tests', 'configs')


def test_static_variant_of_adamtl_is_its_model_without_the_policy():
    config = osp.join(CONFIGS, 'tiny_adamtl_swin_synthetic.py')
    torch.manual_seed(0)
    adaptive = init_model(config)
    static_cfg = static_variant(config)
    assert 'budget' not in static_cfg.model.get('test_cfg', {})
    static = init_model(static_cfg)
    ours, theirs = adaptive.state_dict(), static.state_dict()
    # Every weight of the static model is one of AdaMTL's, of the same
    # shape; what AdaMTL adds is its policy.
    assert set(theirs) < set(ours)
    assert all(ours[k].shape == v.shape for k, v in theirs.items())
    assert all('policy' in k for k in set(ours) - set(theirs))


def test_static_counterpart_carries_the_weights_and_runs_the_same():
    config = osp.join(CONFIGS, 'tiny_adamtl_swin_synthetic.py')
    torch.manual_seed(0)
    adaptive = init_model(config, cfg_options={
        'model.test_cfg.captured': True})
    static = static_counterpart(adaptive)
    assert 'captured' not in static.cfg.model.get('test_cfg', {})
    ours = adaptive.state_dict()
    for k, v in static.state_dict().items():
        assert torch.equal(v, ours[k]), k
    # Without a budget the adaptive model is the static one.
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad(), adaptive.runtime(budget=None, captured=False):
        a = adaptive.encode_decode(x, None)
    with torch.no_grad():
        b = static.encode_decode(x, None)
    for task in a:
        torch.testing.assert_close(a[task], b[task])


def test_static_variant_of_mtlora_drops_the_adapters_and_their_freezing():
    config = osp.join(CONFIGS, 'tiny_mtlora_swin_synthetic.py')
    cfg = static_variant(config)
    assert 'lora' not in cfg.model.backbone
    assert 'frozen' not in cfg.model.get('train_cfg', {})
    static = init_model(cfg)
    assert not any('lora' in k for k in static.state_dict())


def test_executed_is_the_mean_of_the_predictions_metainfo():
    """On AdaMTL, whose images execute different shares: the means of
    what each prediction's metainfo says it executed."""
    import numpy as np
    model = init_model(
        osp.join(CONFIGS, 'tiny_adamtl_swin_synthetic.py'),
        cfg_options={'model.test_cfg.budget': 0.5,
                     'model.test_cfg.budget_mode': 'input'})
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        # Random selectors, no bias: decisions differ image to image.
        for name, p in model.backbone.policy.named_parameters():
            p.copy_(torch.zeros_like(p) if name.endswith('out.bias') else
                    torch.randn(p.shape, generator=g) /
                    max(1, p.shape[-1])**0.5)
    batches = [random_batch(model, 2, (64, 64), seed=s) for s in (0, 1)]
    measured = executed(model, batches)
    with torch.no_grad():
        per_image = [image_complexity(s) for b in batches
                     for s in model.predict(b['inputs'], b['data_samples'])]
    gflops = [p['gflops'] for p in per_image]
    assert len(set(gflops)) > 1
    for key in ('gflops', 'encoder_gflops'):
        assert abs(measured[key] -
                   np.mean([p[key] for p in per_image])) < 1e-9
    keep = np.mean([np.mean(p['block_keep']) for p in per_image])
    assert abs(measured['block_keep'] - keep) < 1e-9
    assert measured['block_keep'] < 1.0


def test_amp_autocast_is_bfloat16_on_cpu():
    a = torch.randn(4, 4)
    with autocast('cpu', True):
        assert torch.mm(a, a).dtype == torch.bfloat16
    with autocast('cpu', False):
        assert torch.mm(a, a).dtype == torch.float32
