"""The encoder contract: every method's encoder through one seam, a
forward that leaves no module state behind, and control fields refused
where an encoder cannot honour them."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmadamtl.models.backbones import (Control, EncoderStats,
                                       ForeignEncoder, MultiTaskEncoder)
from tests.conftest import ROOT
from tests.test_models.test_backbones.test_adaptive_swin import \
    _shuffle_policy

CONFIGS = {
    name: f'{ROOT}/tests/configs/tiny_{name}_swin_synthetic.py'
    for name in ('static', 'adamtl', 'mtlora', 'controllable')
}
# A control that changes what runs, per method (None: no such control).
CONTROLS = dict(
    static=None,
    adamtl=[dict(budget=0.3, budget_mode='input'),
            dict(budget=0.8, budget_mode='input')],
    mtlora=[dict(tasks=['semseg']), dict(tasks=['depth', 'normals'])],
    controllable=[dict(preference=dict(semseg=1.0, depth=0.1)),
                  dict(preference=dict(depth=1.0, edge=0.5))])


def _model(name, **model_changes):
    init_default_scope('mmseg')
    cfg = Config.fromfile(CONFIGS[name])
    for key, value in model_changes.items():
        cfg.model[key] = value
    torch.manual_seed(0)
    return MODELS.build(cfg.model).eval()


def _attributes(model) -> dict:
    """Every module's plain attributes, public and private, except the
    caches named in the contract (FLOPs per shape, the budget curve's
    inversion, search results), by module name."""
    plain = (bool, int, float, str, tuple, list, dict, type(None))
    caches = {'_costs', '_vectors', '_inverted', '_searched', '_shapes',
              '_flops', '_terms_cache', '_table'}
    return {name: {k: repr(v) for k, v in vars(m).items()
                   if isinstance(v, plain) and k not in caches}
            for name, m in model.named_modules()}


@pytest.mark.parametrize('name', list(CONFIGS))
def test_every_encoder_implements_the_contract(name):
    """``encode(x, control)`` returns the features and float32 per-image
    multiply-adds, the figures ``predict`` writes in the metainfo."""
    model = _model(name)
    assert isinstance(model.backbone, MultiTaskEncoder)
    assert model.encoder is model.backbone
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats, stats = model.backbone.encode(x, model.control(x.shape[2:]))
        samples = model.predict(x)
    assert isinstance(stats, EncoderStats)
    assert stats.encoder_flops.shape == (2, )
    assert stats.encoder_flops.dtype == torch.float32
    for i, s in enumerate(samples):
        assert s.metainfo['encoder_gflops'] * 1e9 == pytest.approx(
            float(stats.encoder_flops[i]), rel=1e-6)
    maps = feats if isinstance(feats, list) else next(iter(feats.values()))
    assert all(m.shape[0] == 2 for m in maps)


@pytest.mark.parametrize('name', [n for n in CONFIGS if CONTROLS[n]])
def test_predict_under_two_controls_changes_no_module_state(name):
    """Two predicts with different controls leave every module attribute
    and tensor as they were; the same control gives the same output
    whatever ran before."""
    model = _model(name)
    if name == 'adamtl':
        # Decisions that follow the budget (an untrained policy's do
        # not much).
        _shuffle_policy(model.backbone, scale=3.0)
    x = torch.randn(1, 3, 64, 64)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    before = _attributes(model)
    first, second = CONTROLS[name]
    outs = []
    with torch.no_grad():
        for control in (first, second, first):
            with model.runtime(**control):
                # The forward itself changes nothing (runtime's restore
                # on exit would hide it).
                inside = _attributes(model)
                outs.append(model.encode_decode(x, None))
                assert _attributes(model) == inside
    assert _attributes(model) == before
    for k, v in model.state_dict().items():
        # (An uncalibrated budget curve is NaN.)
        torch.testing.assert_close(v, state[k], rtol=0, atol=0,
                                   equal_nan=True, msg=k)
    assert outs[0].keys() == outs[2].keys()
    for task in outs[0]:
        assert torch.equal(outs[0][task], outs[2][task]), task
    # The two controls really ran different things.
    assert outs[0].keys() != outs[1].keys() or any(
        not torch.equal(outs[0][t], outs[1][t]) for t in outs[0])
    # No encoder or decoder keeps a control of its own.
    assert 'subnet' not in vars(model.backbone)
    assert not any('width' in vars(d)
                   for d in model.decode_head.decoders.values())
    assert not any(hasattr(m, 'last_stats') for m in model.modules())


def test_foreign_backbone_runs_in_full_and_refuses_a_budget():
    """An mmseg backbone without the contract (mmseg's own Swin) is run
    through ``ForeignEncoder``: predictions with its counted cost; a
    budget names it."""
    init_default_scope('mmseg')
    cfg = Config.fromfile(CONFIGS['static'])
    backbone = copy.deepcopy(cfg.model.backbone)
    backbone.type = 'SwinTransformer'
    backbone.pop('out_after_downsample', None)
    model = _model('static', backbone=backbone)
    assert isinstance(model.encoder, ForeignEncoder)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        sample = model.predict(x)[0]
    ours = _model('static')
    with torch.no_grad():
        ref = ours.predict(x)[0]
    assert sample.metainfo['encoder_gflops'] == pytest.approx(
        ref.metainfo['encoder_gflops'])
    with pytest.raises(ValueError, match='SwinTransformer always runs'):
        model.set_budget(0.5)


def test_control_fields_an_encoder_cannot_honour_are_refused():
    adamtl, slim = _model('adamtl'), _model('controllable')
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match='subnet=.*SlimmableSwin'):
        adamtl.backbone.encode(x, Control(subnet=slim.backbone.min_config))
    with pytest.raises(ValueError, match='budget=0.5 needs an adaptive'):
        slim.backbone.encode(x, Control(budget=0.5))
    with pytest.raises(ValueError, match="budget_mode must be one of"):
        Control(budget=0.5, budget_mode='cheapest')
    with pytest.raises(ValueError, match='needs an adaptive'):
        _model('static').set_policy_temperature(1.0)
