"""Every method trains and predicts under float16 and bfloat16 autocast,
and its cost accounting stays float32's (executed FLOPs of 10^7-10^10
multiply-adds overflow float16 and lose digits in bfloat16)."""
import copy
import math

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmseg.registry import MODELS

from mmadamtl.apis import random_batch
from tests.conftest import ROOT
from tests.test_models.test_backbones.test_adaptive_swin import \
    _shuffle_policy

CONFIGS = f'{ROOT}/tests/configs'
PRECISIONS = [torch.float16, torch.bfloat16]
REL = 5e-3  # the 0.5%


def _model(name: str, **policy) -> torch.nn.Module:
    cfg = copy.deepcopy(Config.fromfile(f'{CONFIGS}/{name}.py').model)
    if policy:
        cfg.backbone.policy.update(policy)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    if getattr(model.backbone, 'policy', None) is not None:
        # Decisions that differ from image to image and block to block
        # (per task biased to skip: the executed one is their union).
        _shuffle_policy(model.backbone, scale=3.0)
        if policy.get('task_mode') == 'per_task':
            with torch.no_grad():
                for n, p in model.backbone.policy.named_parameters():
                    if n.endswith('out.bias'):
                        p.fill_(-2.)
    return model


def _autocast(dtype):
    if dtype is None:
        return torch.autocast('cpu', enabled=False)
    return torch.autocast('cpu', dtype=dtype)


def _losses(model, batch, dtype) -> dict:
    model.train()
    torch.manual_seed(1)
    with _autocast(dtype):
        losses = model.loss(batch['inputs'], batch['data_samples'])
    return losses


def _training_stats(model, batch, dtype):
    """What the encoder executes in the training forward of ``_losses``."""
    model.train()
    torch.manual_seed(1)
    x = batch['inputs']
    with _autocast(dtype):
        return model.encode(x, model.training_control(len(x), x.device))[1]


def _predict(model, batch, dtype) -> list:
    model.eval()
    with torch.no_grad(), _autocast(dtype):
        return [s.metainfo for s in model.predict(
            batch['inputs'], copy.deepcopy(batch['data_samples']))]


def _assert_finite(losses: dict) -> None:
    for key, value in losses.items():
        assert torch.isfinite(value).all(), f'{key} is {value}'


def _assert_meta_close(meta, ref) -> None:
    for m, r in zip(meta, ref):
        for key in ('gflops', 'encoder_gflops'):
            assert math.isfinite(m[key]) and m[key] > 0, (key, m[key])
            assert m[key] == pytest.approx(r[key], rel=REL), key
        if 'policy' in r:
            for key in ('encoder_share', 'block_fraction', 'policy_gflops'):
                assert math.isfinite(m['policy'][key])
                assert m['policy'][key] == pytest.approx(
                    r['policy'][key], rel=REL, abs=1e-9), key


@pytest.mark.parametrize('dtype', PRECISIONS)
@pytest.mark.parametrize('name', ['tiny_static_swin_synthetic',
                                  'tiny_mtlora_swin_synthetic'])
def test_static_and_mtlora_train_and_predict(name, dtype):
    model = _model(name)
    batch = random_batch(model, 2, (64, 64))
    _assert_finite(_losses(model, batch, dtype))
    loss = sum(v for k, v in _losses(model, batch, dtype).items()
               if 'loss' in k)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters()
               if p.grad is not None)
    _assert_meta_close(_predict(model, batch, dtype),
                       _predict(model, batch, None))


@pytest.mark.parametrize('dtype', PRECISIONS)
@pytest.mark.parametrize('task_mode', ['single', 'per_task'])
def test_adamtl_accounting_is_float32s(task_mode, dtype):
    """Noise off, so float32 and autocast take the same decisions: the
    budget loss and every executed figure equal float32's."""
    model = _model('tiny_adamtl_swin_synthetic', task_mode=task_mode,
                   noise=0.)
    batch = random_batch(model, 2, (64, 64))
    ref = _losses(model, batch, None)
    ref_stats = _training_stats(model, batch, None)
    losses = _losses(model, batch, dtype)
    stats = _training_stats(model, batch, dtype)
    _assert_finite(losses)
    # The policy skips something, and the decisions are the same.
    assert ref_stats.block_fraction.max() < 1
    assert torch.equal(stats.blocks, ref_stats.blocks)
    for key in ('encoder_flops', 'block_fraction', 'token_fraction',
                'deterministic_fraction', 'policy_flops'):
        value = getattr(stats, key)
        assert value.dtype == torch.float32, key
        torch.testing.assert_close(value, getattr(ref_stats, key),
                                   rtol=REL, atol=0)
    for key in ('loss_budget', 'executed_fraction'):
        assert losses[key].dtype == torch.float32
        assert float(losses[key]) == pytest.approx(float(ref[key]), rel=REL)
    # Inference: the metainfo figures.
    model.set_budget_mode('input')
    meta = _predict(model, batch, dtype)
    assert any(m['policy']['block_fraction'] < 1 for m in meta)
    _assert_meta_close(meta, _predict(model, batch, None))


@pytest.mark.parametrize('dtype', PRECISIONS)
def test_adamtl_cap_holds_under_autocast(dtype):
    model = _model('tiny_adamtl_swin_synthetic')
    batch = random_batch(model, 4, (64, 64))
    for cap in (0.6, 0.8):
        with model.runtime(budget=cap, budget_mode='cap'):
            meta = _predict(model, batch, dtype)
        for m in meta:
            assert m['policy']['encoder_share'] <= cap + 1e-6


@pytest.mark.parametrize('dtype', PRECISIONS)
def test_controllable_sandwich_step_and_costs(dtype):
    model = _model('tiny_controllable_swin_synthetic')
    batch = random_batch(model, 2, (64, 64))
    raw = dict(inputs=[(x * 50 + 100).clamp(0, 255).to(torch.uint8)
                       for x in batch['inputs']],
               data_samples=batch['data_samples'])
    model.train()
    wrapper = OptimWrapper(torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.))
    torch.manual_seed(3)
    with _autocast(dtype):
        log = model.train_step(raw, wrapper)
    assert log and all(math.isfinite(float(v)) for v in log.values())
    model.set_subnet('min', dict(semseg=0.5, depth=0))
    meta = _predict(model, batch, dtype)
    _assert_meta_close(meta, _predict(model, batch, None))
    assert meta[0]['gflops'] < meta[0]['controllable']['max_gflops']
