"""Loss weightings: values against independent computations, their state,
and their place in the multi-task model (with AdaMTL's budget loss)."""
import copy
import math

import pytest
import torch
from mmseg.registry import MODELS

from mmadamtl.models.losses.loss_weighting import build_loss_weighting
from tests.conftest import ROOT
from tests.test_models.test_segmentors.test_multi_task_encoder_decoder \
    import _model, _sample

TASKS2 = ['semseg', 'depth']


def _losses(a, b, grad=False):
    return dict(semseg=torch.tensor(float(a), requires_grad=grad),
                depth=torch.tensor(float(b), requires_grad=grad))


def test_uncertainty_weighting_value_and_gradient():
    w = build_loss_weighting(dict(type='UncertaintyWeighting'), TASKS2)
    with torch.no_grad():
        w.log_vars.copy_(torch.tensor([0.5, -1.0]))
    weighted, extra = w(_losses(2., 3.))
    # 0.5 exp(-s) L and the regulariser 0.5 (s1 + s2), by hand.
    assert weighted['semseg'].item() == pytest.approx(
        0.5 * math.exp(-0.5) * 2.)
    assert weighted['depth'].item() == pytest.approx(0.5 * math.exp(1.) * 3.)
    assert extra['loss_weighting'].item() == pytest.approx(0.5 * -0.5)
    assert extra['semseg.weight'].item() == pytest.approx(
        0.5 * math.exp(-0.5))
    total = sum(weighted.values()) + extra['loss_weighting']
    total.backward()
    # d/ds [0.5 e^-s L + 0.5 s] = 0.5 (1 - e^-s L)
    expected = [0.5 * (1 - math.exp(-0.5) * 2.), 0.5 * (1 - math.exp(1.) * 3.)]
    assert w.log_vars.grad.tolist() == pytest.approx(expected)


def test_dwa_weights_follow_the_loss_ratios():
    w = build_loss_weighting(dict(type='DWAWeighting', interval=2,
                                  temperature=2.), TASKS2).train()
    # Periods of two steps: means (2, 4), then (1, 4), then (1, 2).
    seq = [(1, 3), (3, 5), (1, 4), (1, 4), (1, 2), (1, 2)]
    seen = []
    for a, b in seq:
        _, extra = w(_losses(a, b))
        seen.append((extra['semseg.weight'].item(),
                     extra['depth.weight'].item()))
    # Weights 1 until two periods have ended (after step 4).
    assert seen[:5] == [(1., 1.)] * 4 + [seen[4]]
    r = torch.tensor([1 / 2, 4 / 4])      # period 2 / period 1
    expected = (2 * torch.softmax(r / 2., 0)).tolist()
    assert list(seen[4]) == pytest.approx(expected)
    weighted, _ = w(_losses(1, 1))
    # After the third period: r = (1/1, 2/4).
    r = torch.tensor([1., 0.5])
    expected = (2 * torch.softmax(r / 2., 0)).tolist()
    assert [weighted['semseg'].item(), weighted['depth'].item()] == \
        pytest.approx(expected)
    # The state is in the buffers: a copy continues identically.
    state = copy.deepcopy(w.state_dict())
    w2 = build_loss_weighting(dict(type='DWAWeighting', interval=2,
                                   temperature=2.), TASKS2).train()
    w2.load_state_dict(state)
    for a, b in [(2, 1), (3, 1), (1, 1)]:
        _, e1 = w(_losses(a, b))
        _, e2 = w2(_losses(a, b))
        assert e1['depth.weight'].item() == e2['depth.weight'].item()


def test_gradnorm_balances_gradient_norms():
    torch.manual_seed(0)
    w = build_loss_weighting(dict(type='GradNormWeighting', alpha=1.),
                             TASKS2).train()
    feat = torch.randn(4, requires_grad=True)
    # Loss gradients on the shared feature: norms 2 and 6.
    a = torch.tensor([2., 0., 0., 0.])
    b = torch.tensor([0., 6., 0., 0.])
    losses = dict(semseg=(a * feat).sum() + 10, depth=(b * feat).sum() + 10)
    weighted, extra = w(losses, [feat])
    # First step: L(0) = L, so r = 1 and the target is the mean norm 4.
    # |1*2 - 4| + |1*6 - 4| = 4.
    assert extra['loss_weighting'].item() == pytest.approx(4.)
    extra['loss_weighting'].backward()
    # d/dw_t |w_t G_t - target| = sign(.) G_t: (-2, +6).
    assert w.task_weights.grad.tolist() == pytest.approx([-2., 6.])
    assert feat.grad is None           # the weights' loss trains only w
    # Task losses carry detached weights: they train the network only.
    w.task_weights.grad = None
    sum(weighted.values()).backward()
    assert w.task_weights.grad is None
    assert feat.grad.tolist() == pytest.approx([2., 6., 0., 0.])
    with torch.no_grad():
        w.task_weights.copy_(torch.tensor([3., 1.]))
    w(dict(semseg=(a * feat).sum(), depth=(b * feat).sum()), [feat])
    # Renormalised to sum to the number of tasks before the step.
    assert w.task_weights.sum().item() == pytest.approx(2.)
    assert w.task_weights.tolist() == pytest.approx([1.5, 0.5])


def test_gradnorm_needs_shared_features():
    w = build_loss_weighting(dict(type='GradNormWeighting'), TASKS2).train()
    with pytest.raises(ValueError, match='own'):
        w(_losses(1, 1, grad=True), dict(semseg=[], depth=[]))
    with pytest.raises(ValueError, match='no gradient'):
        w(_losses(1, 1, grad=True), [torch.zeros(2)])


def test_bad_weighting_configs():
    with pytest.raises(ValueError, match='interval'):
        build_loss_weighting(dict(type='DWAWeighting', interval=0), TASKS2)
    with pytest.raises(TypeError, match='not a loss weighting'):
        build_loss_weighting(dict(type='BudgetLoss'), TASKS2)
    with pytest.raises(ValueError, match="unknown task 'seg'"):
        build_loss_weighting(dict(type='DWAWeighting'), ['seg'])


def _batch(model, n=2):
    samples = [_sample(64, 64, i) for i in range(n)]
    return model.data_preprocessor(
        dict(inputs=[torch.randint(0, 255, (3, 64, 64)).byte()] * n,
             data_samples=samples), True)


@pytest.mark.parametrize('weighting', ['UncertaintyWeighting',
                                       'DWAWeighting', 'GradNormWeighting'])
def test_weighting_in_the_model(tiny_cfg, weighting):
    head = copy.deepcopy(tiny_cfg.model.decode_head)
    head.loss_weighting = dict(type=weighting)
    model = _model(tiny_cfg, decode_head=head).train()
    data = _batch(model)
    losses = model.loss(data['inputs'], data['data_samples'])
    tasks = list(model.decode_head.tasks)
    for task in tasks:
        assert f'{task}.weight' in losses
    parsed, log_vars = model.parse_losses(losses)
    parsed.backward()
    assert model.backbone.patch_embed.projection.weight.grad is not None
    if weighting != 'DWAWeighting':
        assert 'loss_weighting' in losses
        params = list(model.decode_head.loss_weighting.parameters())
        assert params and params[0].grad is not None
    # Evaluation losses stay the fixed-weight ones, without extra keys.
    model.eval()
    with torch.no_grad():
        plain = model.decode_head.loss(
            model.extract_feat(data['inputs']), data['data_samples'])
    assert all('.weight' not in k and k != 'loss_weighting' for k in plain)


def test_weighting_with_the_budget_loss():
    from mmengine.config import Config
    cfg = Config.fromfile(f'{ROOT}/tests/configs/'
                          'tiny_adamtl_swin_synthetic.py').model
    cfg.decode_head.loss_weighting = dict(type='GradNormWeighting')
    model = MODELS.build(cfg)
    model.init_weights()
    model.train()
    data = _batch(model)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert 'loss_budget' in losses and 'loss_weighting' in losses
    total, _ = model.parse_losses(losses)
    total.backward()
    assert model.decode_head.loss_weighting.task_weights.grad is not None
