"""Controllable widths: slimmable Swin and decoders, sub-network API,
GFLOPs, sandwich training with CI-KD, deployment search and the
controllability measures."""
import json

import numpy as np
import pytest
import timm
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmadamtl.evaluation import (budget_control, hypervolume, spearman,
                                 uniformity)
from mmadamtl.models.backbones import SwinEncoder, convert_swin_checkpoint
from mmadamtl.models.heads import AdaMTLDecoder, SlimmableAdaMTLDecoder
from mmadamtl.models.layers import BlockRunner
from mmadamtl.models.utils.complexity import counted_flops
from mmadamtl.models.utils.controllable_search import (LookupTable,
                                                       check_preference,
                                                       decoder_widths,
                                                       evolution_search,
                                                       search_subnet)
from tests.conftest import ROOT

TINY = f'{ROOT}/tests/configs/tiny_controllable_swin_synthetic.py'
SWIN = dict(pretrain_img_size=64, embed_dims=32, depths=[2, 2, 2, 2],
            num_heads=[2, 4, 8, 16], window_size=4, drop_path_rate=0.)


def _slim(**kw):
    return MODELS.build(dict(dict(type='SlimmableSwinTransformer', **SWIN,
                                  head_choices=(0.5, 1.0),
                                  mlp_ratio_choices=(1, 2, 4)), **kw))


def _model(**test_cfg):
    init_default_scope('mmseg')
    cfg = Config.fromfile(TINY)
    cfg.model.test_cfg = test_cfg
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    return model.eval()


class PreNormTaps(BlockRunner):

    def stage_output(self, stage, x, hw_shape, norm, dims):
        return x.view(-1, *hw_shape, dims).permute(0, 3, 1, 2)


@pytest.mark.parametrize('size', [(64, 64), (72, 56)])
def test_widest_encoder_is_bit_equal_to_static(size):
    """Max widths, through the sliced path, equal mmseg's forward bit for
    bit (shifted windows and padding included)."""
    torch.manual_seed(0)
    static = SwinEncoder(**SWIN)
    slim = _slim()
    slim.load_state_dict(static.state_dict())
    static.eval()
    slim.eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        for a, b in zip(static(x), slim(x)):
            assert torch.equal(a, b)


def _embed(wide: dict, narrow: dict, heads: dict, head_dim: int) -> dict:
    """Write a narrow Swin's weights into the prefixes of a wide one's, in
    mmseg's layouts, independently of the package's slicing."""
    out = {}
    for k, w in wide.items():
        n = narrow.get(k)
        if n is None or n.shape == w.shape:
            out[k] = w if n is None else n
            continue
        w = w.clone()
        stage = int(k.split('.')[1])
        total, h = w.shape[0] // (3 * head_dim), heads[stage]
        if k.endswith('qkv.weight'):
            w.view(3, total, head_dim, -1)[:, :h] = n.view(3, h, head_dim, -1)
        elif k.endswith('qkv.bias'):
            w.view(3, total, head_dim)[:, :h] = n.view(3, h, head_dim)
        elif k.endswith('relative_position_bias_table'):
            w[:, :n.shape[1]] = n
        elif k.endswith('proj.weight') or k.endswith('layers.1.weight'):
            w[:, :n.shape[1]] = n
        elif 'layers.0.0' in k:
            w[:n.shape[0]] = n
        else:
            raise AssertionError(k)
        out[k] = w
    return out


def test_sliced_encoder_equals_narrow_timm_swin_and_its_flops():
    """The sub-network (half the heads, MLP ratio 1) computes what timm's
    Swin built narrow (heads 1/2/4/8 of dim 16, MLP ratio 1) computes
    with the same weights, and its closed-form block GFLOPs equal
    mmengine's counter on that narrow model."""
    torch.manual_seed(0)
    narrow = timm.models.swin_transformer.SwinTransformer(
        img_size=256, patch_size=4, embed_dim=32, depths=(2, 2, 2, 2),
        num_heads=(1, 2, 4, 8), head_dim=16, window_size=4, mlp_ratio=1.,
        num_classes=0)
    for m in narrow.modules():
        if hasattr(m, 'fused_attn'):
            m.fused_attn = False
    narrow.eval()
    _, converted = convert_swin_checkpoint(narrow.state_dict())
    slim = _slim()
    slim.eval()
    slim.load_state_dict(
        _embed(slim.state_dict(), converted, {0: 1, 1: 2, 2: 4, 3: 8}, 16))
    config = slim.set_subnet(dict(heads=0.5, mlp_ratio=1))
    assert slim.stage_widths() == [(1, 32), (2, 64), (4, 128), (8, 256)]
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        ref = narrow.forward_intermediates(x, norm=False,
                                           intermediates_only=True)
        outs = SwinEncoder.forward(slim, x, slim.__class__.forward.__defaults__
                                   and None or _runner(slim))
    for a, b in zip(outs, ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(narrow, (x, ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    by_module = analyzer.by_module()
    counted = sum(by_module[f'layers.{i}.blocks'] for i in range(4))
    assert slim.cost((256, 256), config).blocks_total == counted


def _runner(slim):
    from mmadamtl.models.backbones.slimmable_swin import SlimRunner

    class Runner(SlimRunner, PreNormTaps):
        pass
    return Runner(slim.stage_widths())


@pytest.mark.parametrize('spec', ['min', dict(heads=0.5, mlp_ratio=2),
                                  [dict(heads=1.0, mlp_ratio=1),
                                   dict(heads=0.5, mlp_ratio=4),
                                   dict(heads=0.5, mlp_ratio=1),
                                   dict(heads=1.0, mlp_ratio=2)]])
def test_sliced_encoder_flops_equal_counter(spec):
    """Closed form of the running sub-network = mmengine's counter traced
    on the sliced forward (stem, merging and output norms included)."""
    slim = _slim()
    slim.eval()
    slim.set_subnet(spec)

    class Flat(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.enc = slim

        def forward(self, x):
            return tuple(self.enc(x))
    with torch.no_grad():
        counted = counted_flops(Flat(), torch.zeros(1, 3, 72, 56))
    assert slim.encoder_flops((72, 56)) == counted
    assert counted < slim.encoder_flops((72, 56), config=slim.max_config)


@pytest.mark.parametrize('width', [0.25, 0.5, 1.0])
def test_slim_decoder_equals_adamtl_decoder(width):
    """At width w the slimmable decoder computes what an AdaMTLDecoder of
    w x channels computes with the prefix weights (and that width's norms
    and prediction layer); its counted FLOPs are that decoder's."""
    torch.manual_seed(0)
    slim = SlimmableAdaMTLDecoder([32, 64], 5, channels=16,
                                  widths=(0.25, 0.5, 0.75, 1.0))
    ch = int(16 * width)
    ref = AdaMTLDecoder([32, 64], 5, channels=ch)
    for m in list(slim.modules()) + list(ref.modules()):
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight)
            torch.nn.init.uniform_(m.running_var, 0.5, 2)
    # The reference gets the prefixes of the slimmable decoder's weights.
    idx = slim.widths.index(width)
    src = slim.state_dict()
    state = {}
    for k, v in ref.state_dict().items():
        s = k.replace('.bn.', f'.norms.{idx}.').replace('cls.',
                                                         f'cls.{idx}.')
        s = s.replace('branches.0.0', 'branches.0.0').replace('.0.conv.',
                                                              '.conv.')
        w = src[s]
        if k == 'fuse.conv.weight':
            w = w.view(16, 2, 16, 1, 1)[:ch, :, :ch].reshape(ch, 2 * ch, 1, 1)
        elif w.dim() == 4:
            w = w[:v.shape[0], :v.shape[1]]
        elif w.dim() == 1 and w.shape != v.shape:
            w = w[:v.shape[0]]
        if k == 'cls.weight':
            # The narrow prediction layer's input is scaled by 16 / ch.
            w = w * (16 / ch)
        state[k] = w
    ref.load_state_dict(state)
    slim.set_width(width)
    slim.eval()
    ref.eval()
    xs = [torch.randn(2, 32, 16, 16), torch.randn(2, 64, 8, 8)]
    with torch.no_grad():
        torch.testing.assert_close(slim(xs), ref(xs), atol=1e-5, rtol=1e-5)
        assert counted_flops(slim, (xs, )) == counted_flops(ref, (xs, ))


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
            feats = self.m.backbone(x)
            return tuple(self.m.decode_head.decoders[t](feats)
                         for t in self.m.active_tasks)
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


def test_decoder_width_rule():
    widths = [0.25, 0.5, 0.75, 1.0]
    got = decoder_widths(dict(a=0.5, b=0.2, c=0.3, d=0.0), widths)
    # r / max r = 1, 0.4, 0.6, 0 -> 1.0, 0.5, 0.75, off.
    assert got == dict(a=1.0, b=0.5, c=0.75, d=0.0)


def _table(tasks, encoders, widths, seed=0):
    rng = np.random.default_rng(seed)
    metrics = {t: (50 + 40 * rng.random((len(encoders), len(widths))))
               .tolist() for t in tasks}
    return LookupTable(tasks=tasks, widths=widths,
                       encoders=[[list(s) for s in e] for e in encoders],
                       metrics=metrics,
                       reference={t: 90.0 for t in tasks})


def test_search_stays_within_budget_and_follows_preference():
    """Over random preferences and budgets: within budget always, the most
    preferred task's decoder the widest whenever any configuration with
    it fits, and too small a budget is an error naming it."""
    tasks = ['semseg', 'saliency', 'edge']
    widths = [0.25, 0.5, 0.75, 1.0]
    encs = [((h, r), ) * 4 for h in (0.5, 1.0) for r in (1., 2., 4.)]
    table = _table(tasks, encs, widths)
    enc_cost = {e: 10 * e[0][0] + 3 * e[0][1] for e in encs}

    def cost(e, decs):
        return enc_cost[tuple(tuple(s) for s in e)] + sum(
            4 * w for w in decs.values())
    max_flops = cost(encs[-1], dict.fromkeys(tasks, 1.0))
    rng = np.random.default_rng(1)
    for _ in range(300):
        r = dict(zip(tasks, rng.dirichlet(np.ones(3))))
        b = float(rng.uniform(0.3, 1.0))
        try:
            res = search_subnet(table, r, b, cost, max_flops)
        except ValueError as e:
            assert f'budget {b}' in str(e)
            cheapest = min(enc_cost.values()) + 4 * 0.25 * 3
            assert b * max_flops < cheapest
            continue
        assert res.flops <= b * max_flops
        assert cost(res.encoder, res.decoders) == res.flops
        top = max(r, key=r.get)
        widest_fits = min(enc_cost.values()) + sum(
            4 * w for w in decoder_widths(r, widths).values()) <= \
            b * max_flops
        if widest_fits:
            assert res.decoders == decoder_widths(r, widths)
            assert res.decoders[top] == 1.0
            # The best encoder under the budget by the weighted score.
            best = max((sum(r[t] * table.score(t, i, res.decoders[t])
                            for t in tasks), -cost(e, res.decoders))
                       for i, e in enumerate(encs)
                       if cost(e, res.decoders) <= b * max_flops)
            assert res.score == pytest.approx(best[0])
        else:
            # Narrower decoders for the others, chosen by measured score:
            # the brute-force best with the most preferred task's width
            # kept.
            import itertools
            rule = decoder_widths(r, widths)
            best = max(
                (sum(r[t] * table.score(t, i, d[t]) for t in tasks),
                 -cost(e, d))
                for i, e in enumerate(encs)
                for combo in itertools.product(
                    *([w for w in widths if w <= rule[t]] if t != top else
                      [rule[t]] for t in tasks))
                for d in [dict(zip(tasks, combo))]
                if cost(e, d) <= b * max_flops) if any(
                    cost(e, dict(rule, **{t: widths[0] for t in tasks
                                          if t != top})) <= b * max_flops
                    for e in encs) else None
            if best is not None:
                assert res.decoders[top] == rule[top]
                assert res.score == pytest.approx(best[0])


def test_evolution_search_finds_best_within_limit():
    choices = [(h, r) for h in (0.5, 1.0) for r in (1., 2., 3., 4.)]
    cost = lambda c: sum(h * 8 + r for h, r in c)  # noqa: E731
    # Fitness grows with width but stage 2 matters most.
    weight = [1, 1, 5, 1]
    fitness = lambda c: sum(w * h * r for w, (h, r) in  # noqa: E731
                            zip(weight, c))
    seen = []

    def tracked(c):
        seen.append(c)
        return fitness(c)
    limit = 40
    best, score = evolution_search(choices, 4, tracked, cost, limit,
                                   population=32, generations=20, seed=0)
    assert all(cost(c) <= limit for c in seen)
    import itertools
    brute = max((fitness(c) for c in itertools.product(choices, repeat=4)
                 if cost(c) <= limit))
    assert cost(best) <= limit and score == brute


def test_sandwich_step_averages_the_four_subnets_gradients():
    """One training step = one SGD step on the mean of the sampled
    sub-networks' gradients, the narrower ones with CI-KD against the
    widest's detached features."""
    model = _model()
    model.train()
    x = torch.randn(2, 3, 64, 64)
    from mmadamtl.apis import random_batch
    data = random_batch(model, 2, (64, 64))
    raw = dict(inputs=[(x[i] * 50 + 100).clamp(0, 255).to(torch.uint8)
                       for i in range(2)],
               data_samples=data['data_samples'])
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    torch.manual_seed(3)
    subnets = model.sample_subnets()
    pre = model.data_preprocessor(raw, True)
    # Independent: each sub-network's loss on its own graph.
    grads = [torch.zeros_like(p) for p in params]
    teacher = None
    for k, (_, sub) in enumerate(subnets):
        model.zero_grad()
        model.set_subnet(**sub)
        feats = model.backbone(pre['inputs'])
        losses = model.decode_head.loss(feats, pre['data_samples'])
        loss = sum(losses.values())
        if teacher is None:
            teacher = [f.detach() for f in feats]
        else:
            loss = loss + sum(((f - t)**2).mean()
                              for f, t in zip(feats, teacher))
        loss.backward()
        for g, p in zip(grads, params):
            if p.grad is not None:
                g += p.grad / len(subnets)
    model.zero_grad()
    # BN running stats moved above; restore the weights only matters.
    for p, b in zip(params, before):
        p.data.copy_(b)
    model.set_subnet()
    wrapper = OptimWrapper(torch.optim.SGD(params, lr=1.0))
    torch.manual_seed(3)
    log = model.train_step(raw, wrapper)
    assert {'max.loss', 'min.loss', 'rand0.loss', 'rand1.loss',
            'min.loss_cikd'} <= set(log)
    for p, b, g in zip(params, before, grads):
        torch.testing.assert_close(b - p.detach(), g, atol=1e-5, rtol=1e-4)
    # The deployment configuration is restored after the step.
    assert model.subnet['encoder'] == model.backbone.max_config


def test_cikd_loss_value_and_teacher_detached():
    loss = MODELS.build(dict(type='CIKDLoss', loss_weight=2.0))
    f = [torch.randn(2, 3, 4, 4, requires_grad=True) for _ in range(2)]
    t = [torch.randn(2, 3, 4, 4, requires_grad=True) for _ in range(2)]
    value = loss(f, t)
    expect = 2.0 * sum(((a - b)**2).mean() for a, b in zip(f, t))
    torch.testing.assert_close(value, expect)
    value.backward()
    assert t[0].grad is None and f[0].grad is not None
    with pytest.raises(ValueError, match='differ'):
        loss([torch.zeros(1, 2)], [torch.zeros(1, 3)])


def test_controllability_measures_by_hand():
    # Equal preference-weighted losses: uniformity 1.
    assert uniformity([0.5, 0.25, 0.25], [1.0, 2.0, 2.0]) == \
        pytest.approx(1.0)
    # r*L = (3, 1): p = (.75, .25); KL to uniform = .75 ln 1.5 + .25 ln .5
    kl = 0.75 * np.log(1.5) + 0.25 * np.log(0.5)
    assert uniformity([0.5, 0.5], [3.0, 1.0]) == pytest.approx(1 - kl)
    # Two points in 2-D against (4, 4): areas 3x1 + 1x3 - 1x1 overlap.
    assert hypervolume([[1, 3], [3, 1]], [4, 4]) == pytest.approx(5.0)
    assert spearman([1, 2, 3, 4], [10, 20, 15, 40]) == pytest.approx(0.8)
    res = budget_control([1.0, 2.0, 3.1], [1.0, 2.5, 3.0])
    assert res['within'] == pytest.approx(2 / 3)
    assert res['mean_rel_gap'] == pytest.approx((0 + 0.2 + 0.1 / 3) / 3)


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
