"""ControllableEncoderDecoder: the sub-network API and its GFLOPs,
controls, the sandwich step, and inference that changes nothing."""
import json

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmadamtl.models.backbones import Control
from mmadamtl.models.utils.complexity import counted_flops
from mmadamtl.models.utils.controllable_search import (LookupTable,
                                                       check_preference)
from tests.conftest import ROOT
from tests.test_models.test_backbones.test_slimmable_swin import _slim

TINY = f'{ROOT}/tests/configs/tiny_controllable_swin_synthetic.py'


def _model(**test_cfg):
    init_default_scope('mmseg')
    cfg = Config.fromfile(TINY)
    cfg.model.test_cfg = test_cfg
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    return model.eval()


def test_model_widest_configuration_equals_static_model():
    """The controllable model at its widest = the static multi-task model
    (SwinEncoder + AdaMTLDecoder) with the same weights."""
    model = _model()
    init_default_scope('mmseg')
    cfg = Config.fromfile(TINY)
    static_cfg = cfg.model.copy()
    static_cfg.type = 'MultiTaskEncoderDecoder'
    static_cfg.backbone = {k: v for k, v in cfg.model.backbone.items()
                           if k not in ('head_choices', 'mlp_ratio_choices')}
    static_cfg.backbone['type'] = 'SwinEncoder'
    static_cfg.decode_head.decoder = dict(type='AdaMTLDecoder', channels=16)
    static_cfg.train_cfg = {}
    static = MODELS.build(static_cfg)
    last = len(model.widths) - 1
    state = {}
    for k, v in model.state_dict().items():
        if ('.norms.' in k and f'.norms.{last}.' not in k) or (
                '.cls.' in k and f'.cls.{last}.' not in k):
            continue
        k = k.replace(f'.norms.{last}.', '.bn.').replace(f'.cls.{last}.',
                                                         '.cls.')
        state[k] = v
    static.load_state_dict(state)
    static.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b = model._forward(x), static._forward(x)
    for task in a:
        assert torch.equal(a[task], b[task]), task


def test_outputs_do_not_depend_on_history():
    """A configuration's predictions are the same whatever ran before."""
    model = _model()
    x = torch.randn(2, 3, 64, 64)
    a_cfg = dict(encoder=dict(heads=0.5, mlp_ratio=4),
                 decoders=dict(semseg=0.5, depth=1.0))
    with torch.no_grad():
        model.set_subnet(**a_cfg)
        first = model._decode(x)[0]
        for spec in ('max', 'min', [dict(heads=1.0, mlp_ratio=1)] * 4):
            model.set_subnet(spec, dict(semseg=1.0, depth=0.5))
            model._decode(x)
        model.set_subnet(**a_cfg)
        again = model._decode(x)[0]
    assert first.keys() == again.keys()
    for t in first:
        assert torch.equal(first[t], again[t]), t


def test_subnet_api_and_executed_gflops_in_metainfo():
    model = _model()
    model.set_subnet('min', dict(semseg=0.5, depth=0))
    assert 'depth' not in model.active_tasks
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        sample = model.predict(x)[0]
    assert 'pred_depth' not in sample
    meta = sample.metainfo
    assert meta['controllable']['decoders']['depth'] == 0.0
    # Independent count: the encoder and each running decoder traced by
    # mmengine's counter at the configuration that ran.

    class Flat(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, x):
            # The settings by hand: the narrowest encoder, semseg's
            # decoder at half width, depth off, the others at full width.
            feats = self.m.backbone(
                x, Control(subnet=self.m.backbone.min_config))
            return tuple(
                self.m.decode_head.decoders[t](
                    feats, 0.5 if t == 'semseg' else 1.0)
                for t in self.m.tasks if t != 'depth')
    with torch.no_grad():
        counted = counted_flops(Flat(), x)
    assert meta['gflops'] == pytest.approx(counted / 1e9, rel=1e-12)
    assert meta['gflops'] < meta['controllable']['max_gflops']


@pytest.mark.parametrize('bad,err', [
    (dict(decoders=dict(semseg=0.3)), 'must be 0 or one of'),
    (dict(decoders=dict(sky=1.0)), 'sky'),
    (dict(encoder=dict(heads=0.3)), 'heads=0.3'),
    (dict(encoder=dict(head=0.5)), 'unknown keys'),
    (dict(encoder=[dict(heads=0.5)] * 3), '4 per-stage entries'),
])
def test_bad_subnets_fail_clearly(bad, err):
    model = _model()
    with pytest.raises((ValueError, KeyError), match=err):
        model.set_subnet(**bad)


def test_bad_controls_fail_clearly(tmp_path):
    model = _model()
    with pytest.raises(ValueError, match='sky'):
        model.set_control(preference=dict(sky=1.0))
    with pytest.raises(ValueError, match=r"preference\['depth'\]"):
        model.set_control(preference=dict(semseg=1.0, depth=-0.5))
    with pytest.raises(ValueError, match='budget'):
        model.set_control(budget=1.5)
    model.set_control(budget=0.5)
    with pytest.raises(ValueError, match='lookup_table'):
        model.predict(torch.randn(1, 3, 64, 64))
    with pytest.raises(KeyError, match='budgets'):
        _model(budgets=0.5)
    with pytest.raises(ValueError, match='head_choices'):
        _slim(head_choices=(1 / 3, 1.0))
    # A table that is not one, or pickled, is an error, not code.
    bad = tmp_path / 'table.json'
    bad.write_bytes(b'\x80\x04K\x01.')
    with pytest.raises(ValueError, match='not JSON'):
        LookupTable.load(str(bad))
    bad.write_text(json.dumps(dict(format='other')))
    with pytest.raises(ValueError, match='not a controllable lookup table'):
        LookupTable.load(str(bad))
    with pytest.raises(FileNotFoundError, match='tools/controllable.py'):
        LookupTable.load(str(tmp_path / 'missing.json'))


def test_non_slimmable_parts_are_refused():
    init_default_scope('mmseg')
    cfg = Config.fromfile(TINY)
    cfg.model.decode_head.decoder = dict(type='AdaMTLDecoder', channels=16)
    with pytest.raises(TypeError, match='SlimmableAdaMTLDecoder'):
        MODELS.build(cfg.model)


def _reference_step(model, pkd=None):
    """A sandwich step computed independently: each sampled
    sub-network's loss on its own graph (the narrower ones with CI-KD
    against the widest's detached features and, with ``pkd``, its
    prediction distillation against the widest's detached outputs), the
    mean of their gradients; then the model's own step from the same
    weights, seed and batch with SGD at lr 1. Returns the log, the
    parameters before and after, the reference gradient and the
    narrower sub-networks' ``pkd`` values."""
    from mmadamtl.apis import random_batch
    model.train()
    x = torch.randn(2, 3, 64, 64)
    data = random_batch(model, 2, (64, 64))
    raw = dict(inputs=[(x[i] * 50 + 100).clamp(0, 255).to(torch.uint8)
                       for i in range(2)],
               data_samples=data['data_samples'])
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    torch.manual_seed(3)
    subnets = model.sample_subnets()
    pre = model.data_preprocessor(raw, True)
    grads = [torch.zeros_like(p) for p in params]
    teacher = teacher_outs = None
    kd_values = []
    for _, sub in subnets:
        model.zero_grad()
        subnet = model.check_subnet(**sub)
        feats = model.backbone(pre['inputs'],
                               Control(subnet=subnet['encoder']))
        outs = model.decode_head(feats, None, subnet['decoders'])
        loss = sum(model.decode_head.loss_by_outputs(
            outs, pre['data_samples'], feats).values())
        if teacher is None:
            teacher = [f.detach() for f in feats]
            teacher_outs = {t: o.detach() for t, o in outs.items()}
        else:
            loss = loss + sum(((f - t)**2).mean()
                              for f, t in zip(feats, teacher))
            if pkd is not None:
                kd = sum(pkd(outs, teacher_outs).values())
                kd_values.append(float(kd))
                loss = loss + kd
        loss.backward()
        for g, p in zip(grads, params):
            if p.grad is not None:
                g += p.grad / len(subnets)
    model.zero_grad()
    # BN running stats moved above; restoring the weights is what matters.
    for p, b in zip(params, before):
        p.data.copy_(b)
    model.set_subnet()
    wrapper = OptimWrapper(torch.optim.SGD(params, lr=1.0))
    torch.manual_seed(3)
    log = model.train_step(raw, wrapper)
    return log, params, before, grads, kd_values


def test_sandwich_step_averages_the_four_subnets_gradients():
    """One training step = one SGD step on the mean of the sampled
    sub-networks' gradients, the narrower ones with CI-KD against the
    widest's detached features."""
    model = _model()
    log, params, before, grads, _ = _reference_step(model)
    assert {'max.loss', 'min.loss', 'rand0.loss', 'rand1.loss',
            'min.loss_cikd'} <= set(log)
    for p, b, g in zip(params, before, grads):
        torch.testing.assert_close(b - p.detach(), g, atol=1e-5, rtol=1e-4)
    # The deployment configuration is restored after the step.
    assert model.subnet['encoder'] == model.backbone.max_config


def test_test_cfg_tasks_switch_the_others_off():
    model = _model(tasks=['semseg', 'depth'])
    assert model.active_tasks == ['semseg', 'depth']
    assert model.subnet['decoders']['edge'] == 0.0
    with torch.no_grad():
        sample = model.predict(torch.randn(1, 3, 64, 64))[0]
    assert 'pred_depth' in sample and 'pred_edge' not in sample


def _attributes(model) -> dict:
    """Every module's plain public attributes (what a forward could
    leave changed), by module name."""
    plain = (bool, int, float, str, tuple, list, dict, type(None))
    return {name: {k: repr(v) for k, v in vars(m).items()
                   if not k.startswith('_') and isinstance(v, plain)}
            for name, m in model.named_modules()}


def test_predict_under_a_control_leaves_the_model_as_it_was():
    """Two predicts with different preferences change no module attribute
    and no tensor; each runs its searched sub-network (metainfo) and gives
    the same output whatever ran before."""
    model = _model()
    x = torch.randn(1, 3, 64, 64)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    before = _attributes(model)
    prefs = [dict(semseg=1.0, depth=0.1), dict(depth=1.0, edge=0.5)]
    outs = []
    with torch.no_grad():
        for pref in prefs + prefs[:1]:
            with model.runtime(preference=pref):
                sample = model.predict(x)[0]
            outs.append(sample)
            assert sample.metainfo['controllable']['preference'] == \
                pytest.approx(check_preference(pref, model.tasks))
    assert _attributes(model) == before
    assert model.subnet['encoder'] == model.backbone.max_config
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    # The preferences ran different decoders, and A after B is A.
    dec = [s.metainfo['controllable']['decoders'] for s in outs]
    assert dec[0] != dec[1] and dec[0] == dec[2]
    assert torch.equal(outs[0].pred_depth.data, outs[2].pred_depth.data)
    # A control set on the model: predict still changes nothing.
    model.set_control(preference=prefs[1])
    before = _attributes(model)
    with torch.no_grad():
        model.predict(x)
        model.predict(x)
    assert _attributes(model) == before


def _sandwich_model(**sandwich):
    init_default_scope('mmseg')
    cfg = Config.fromfile(TINY)
    cfg.model.train_cfg = dict(sandwich=sandwich)
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def test_sandwich_step_with_prediction_distillation():
    """With ``predict_distill`` the narrower sub-networks add the
    distillation of their outputs towards the widest's, detached: the
    step follows the mean gradient of the task losses, CI-KD and
    PredictionDistillLoss computed independently here."""
    from mmadamtl.models.losses import PredictionDistillLoss
    kd = dict(type='PredictionDistillLoss', temperature=2.0,
              loss_weight=0.7, task_weights=dict(depth=3.0))
    model = _sandwich_model(predict_distill=kd)
    pkd = PredictionDistillLoss(temperature=2.0, loss_weight=0.7,
                                task_weights=dict(depth=3.0))
    log, params, before, grads, kd_values = _reference_step(model, pkd)
    assert all(v > 0 for v in kd_values)
    for name, value in zip(('min', 'rand0', 'rand1'), kd_values):
        assert float(log[f'{name}.loss_pkd']) == pytest.approx(value,
                                                               rel=1e-4)
    assert 'max.loss_pkd' not in log
    for p, b, g in zip(params, before, grads):
        torch.testing.assert_close(b - p.detach(), g, atol=1e-5, rtol=1e-4)
    assert model._teacher_outputs is None and model._last_outputs is None


def test_prediction_distillation_is_off_by_default():
    model = _sandwich_model()
    assert model.predict_distill is None
    assert model.sandwich['decoder_sampling'] == 'preference'
    with pytest.raises(ValueError, match='decoder_sampling'):
        _sandwich_model(decoder_sampling='cycle')
    with pytest.raises(KeyError, match='predict_distil'):
        _sandwich_model(predict_distil=dict(type='PredictionDistillLoss'))


def _width_passes(sampling: str, steps: int) -> dict:
    """Per decoder width, its training passes per task over ``steps``
    sandwich iterations (fixed seed)."""
    init_default_scope('mmseg')
    cfg = Config.fromfile(TINY)
    cfg.model.decode_head.decoder.widths = (0.25, 0.5, 0.75, 1.0)
    cfg.model.train_cfg = dict(sandwich=dict(decoder_sampling=sampling))
    model = MODELS.build(cfg.model)
    counts = dict.fromkeys(model.widths, 0)
    torch.manual_seed(0)
    for _ in range(steps):
        for _, sub in model.sample_subnets():
            for w in sub['decoders'].values():
                counts[w] += 1
    return {w: c / len(model.tasks) for w, c in counts.items()}


def test_uniform_decoder_sampling_trains_every_width_evenly():
    """With ``decoder_sampling='uniform'`` every width gets about one pass
    per task and iteration (widest and narrowest by the sandwich, the two
    intermediate ones by the two random sub-networks); the default
    preference sampling leaves the intermediate widths rarely trained."""
    steps = 300
    uniform = _width_passes('uniform', steps)
    for w, passes in uniform.items():
        assert abs(passes - steps) <= 0.1 * steps, (w, passes)
    assert uniform[0.25] == uniform[1.0] == steps
    preference = _width_passes('preference', steps)
    assert sum(preference.values()) == sum(uniform.values()) == 4 * steps
    for w in (0.5, 0.75):
        assert preference[w] < 0.3 * steps, (w, preference)


def test_static_teacher_distillation_is_refused():
    """``train_cfg.distill`` (a static teacher checkpoint) would go
    unused by the sandwich step: refused, naming what to use."""
    init_default_scope('mmseg')
    cfg = Config.fromfile(TINY)
    cfg.model.train_cfg = dict(cfg.model.get('train_cfg') or {},
                               distill=dict(teacher_checkpoint='s.pth'))
    with pytest.raises(ValueError, match='predict_distill'):
        MODELS.build(cfg.model)


def test_alternation_with_all_losses_is_refused():
    """The sandwich step trains only the turn's task: freezing the other
    decoders for losses it never computes is refused by name."""
    model = _model()
    with pytest.raises(ValueError, match='all_task_losses'):
        model.set_train_tasks(['semseg'], all_losses=True)
    model.set_train_tasks(['semseg'])
    assert model.train_tasks == ['semseg']


def test_captured_heads_at_a_subnet_equal_eager():
    """``runtime(captured=True)`` (and ``test_cfg.captured``) runs the
    heads compiled at the sub-network's decoder widths: the same outputs
    as eager, through the compiled function (each call's widths
    recorded), the flag restored after the block (dynamo, ``eager``
    backend: fast)."""
    import mmadamtl.models.segmentors.multi_task_encoder_decoder as seg
    from mmadamtl.models.utils import compiled_copy
    from tests.test_models.test_segmentors.test_captured_mode import \
        _compile as compile_eager
    calls = []

    def _compile(fn):
        compiled = compile_eager(fn)

        def counted(*args):
            calls.append(args[3])  # the decoder widths of the call
            return compiled(*args)
        return counted

    model = _model()
    model._compiled_heads = compiled_copy(seg._heads, _compile)
    x = torch.randn(1, 3, 64, 64)
    subnets = [dict(encoder='min', decoders=dict(semseg=0.5, depth=1.0)),
               dict(encoder='max', decoders=dict(semseg=1.0, edge=0.5))]
    with torch.no_grad():
        for subnet in subnets:
            canon = model.check_subnet(**subnet)
            eager = model._decode(x, model.subnet_control(
                canon, [t for t in model.tasks if canon['decoders'][t]]))[0]
            with model.runtime(subnet=subnet, captured=True) as m:
                assert m.control().captured
                captured = m._decode(x)[0]
            assert not model.control().captured
            assert captured.keys() == eager.keys()
            for t in eager:
                torch.testing.assert_close(captured[t], eager[t])
    assert [c['semseg'] for c in calls] == [0.5, 1.0]
    assert _model(captured=True).control().captured
    with pytest.raises(ValueError, match='test_cfg.captured'):
        _model(captured='yes')
