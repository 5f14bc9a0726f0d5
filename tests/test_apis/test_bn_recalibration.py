"""BatchNorm recalibration of a deployed sub-network: the statistics are
the batch statistics of the BatchNorms' inputs at that sub-network, only
they change, and the model passed in is left as it was."""
import copy
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from mmadamtl.apis import init_model, recalibrate_bn, train_batches
from mmadamtl.apis.deploy import (TaskOutputs, deploy, max_output_diff,
                                  narrow_model)
from mmadamtl.models.backbones.swin_checkpoint import load_state_dict_file
from tests.test_apis.test_deploy import TINY_CONTROLLABLE, TINY_STATIC

SUBNET = dict(encoder='min', decoders=dict(semseg=0.5, depth=1.0, edge=0.0))


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    m = init_model(TINY_CONTROLLABLE)
    with torch.no_grad():
        for name, b in m.named_buffers():
            if name.endswith('running_var'):
                b.uniform_(0.5, 1.5)
    return m


def _batches(n=2, seed=2):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, 64, 64, generator=g) for _ in range(n)]


def _control(model):
    with model.runtime(subnet=SUBNET):
        return model.control((64, 64))


def _hooked_statistics(model, control, batches) -> dict:
    """Independently: per BatchNorm that runs, the mean over the batches
    of its input's batch mean and unbiased batch variance, every
    BatchNorm normalising by its batch statistics."""
    net = copy.deepcopy(model).eval()
    seen = {}
    hooks = []
    for name, m in net.named_modules():
        if isinstance(m, _BatchNorm):
            m.train()
            hooks.append(m.register_forward_hook(
                lambda mod, args, out, name=name: seen.setdefault(
                    name, []).append(args[0].detach())))
    with torch.no_grad():
        for x in batches:
            net._decode(x, control)
    for h in hooks:
        h.remove()
    stats = {}
    for name, inputs in seen.items():
        means = [x.mean(dim=(0, 2, 3)) for x in inputs]
        vars_ = [x.transpose(0, 1).flatten(1).var(dim=1, unbiased=True)
                 for x in inputs]
        stats[name] = (sum(means) / len(means), sum(vars_) / len(vars_),
                       len(inputs))
    return stats


def test_statistics_are_the_subnetworks_batch_statistics(model):
    control = _control(model)
    batches = _batches()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = {n: m.training for n, m in model.named_modules()}
    stats = recalibrate_bn(model, batches, control)
    expect = _hooked_statistics(model, control, batches)
    assert expect, 'no BatchNorm ran'
    # Only the BatchNorms that ran: the running decoders' norms of their
    # width (semseg at its narrowest, the others at their widest; edge
    # off).
    names = {k.rsplit('.', 1)[0] for k in stats}
    assert names == set(expect)
    tasks = {name.split('.')[2] for name in names}
    assert tasks == set(model.tasks) - {'edge'}
    for name in names:
        index = 0 if name.split('.')[2] == 'semseg' else len(model.widths) - 1
        assert name.endswith(f'.norms.{index}'), name
        mean, var, count = expect[name]
        torch.testing.assert_close(stats[f'{name}.running_mean'], mean,
                                   rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(stats[f'{name}.running_var'], var,
                                   rtol=1e-4, atol=1e-5)
        assert int(stats[f'{name}.num_batches_tracked']) == count == 2
        # Statistics of its own: not the trained ones.
        assert not torch.allclose(stats[f'{name}.running_mean'],
                                  state[f'{name}.running_mean'])
    # The model passed in is unchanged: every tensor, every mode, every
    # momentum.
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert all(m.momentum == 0.1 for m in model.modules()
               if isinstance(m, _BatchNorm))


def test_applied_statistics_change_only_bn_buffers_and_match_narrow(model):
    """Loaded into a copy they change its BN running statistics only; the
    narrow model recalibrated on its own computes what the slimmable copy
    computes with them."""
    control = _control(model)
    batches = _batches()
    stats = recalibrate_bn(model, batches, control)
    tuned = copy.deepcopy(model)
    tuned.load_state_dict(stats, strict=False)
    before, after = model.state_dict(), tuned.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and changed <= set(stats)
    assert all(k.endswith(('running_mean', 'running_var',
                           'num_batches_tracked')) for k in stats)
    _, narrow = narrow_model(model, control)
    narrow.load_state_dict(recalibrate_bn(narrow, batches), strict=False)
    xs = [b[:1] for b in _batches(2, seed=5)]
    same = max_output_diff(TaskOutputs(tuned, control),
                           TaskOutputs(narrow, narrow.control((64, 64))), xs)
    assert max(same.values()) <= 1e-4
    moved = max_output_diff(TaskOutputs(model, control),
                            TaskOutputs(tuned, control), xs)
    assert max(moved.values()) > 1e-3


def test_no_batches_is_an_error(model):
    with pytest.raises(ValueError, match='no batches'):
        recalibrate_bn(model, [], _control(model))


def test_deploy_recalibrates_the_narrow_model_only(model, tiny_synthetic,
                                                   tmp_path):
    opts = {f'{k}.dataset.data_root': tiny_synthetic
            for k in ('train_dataloader', 'val_dataloader',
                      'test_dataloader')}
    ckpt = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    out = str(tmp_path / 'out')
    report = deploy(TINY_CONTROLLABLE, ckpt, out, (64, 64), subnet=SUBNET,
                    exporter='torchscript', cfg_options=opts,
                    recalibrate_bn=3)
    bn = report['narrow']['recalibrated_bn']
    assert bn['images'] == 3 and bn['batches'] == 2 and bn['layers'] > 0
    assert max(bn['max_abs_change'].values()) > 0
    # The cut is checked before the recalibration.
    assert max(report['narrow']['max_abs_diff'].values()) <= 1e-5
    # narrow.pth holds what recalibrate_bn gives on the same images (the
    # training pipeline seeded) at the narrow model.
    cfg = copy.deepcopy(model.cfg)
    cfg.merge_from_dict(opts)
    _, narrow = narrow_model(model, _control(model))
    expect = recalibrate_bn(narrow, train_batches(cfg, 3))
    saved = load_state_dict_file(osp.join(out, 'narrow.pth'))
    for k, v in expect.items():
        torch.testing.assert_close(saved[k], v, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match='recalibrate-bn'):
        deploy(TINY_STATIC, None, str(tmp_path / 'static'), (64, 64),
               exporter='torchscript', recalibrate_bn=3)


def test_train_batches_refuses_bad_counts(model, tiny_synthetic):
    cfg = copy.deepcopy(model.cfg)
    cfg.train_dataloader.dataset.data_root = tiny_synthetic
    with pytest.raises(ValueError, match='at least one image'):
        train_batches(cfg, 0)
    with pytest.raises(ValueError, match='the training set has 6'):
        train_batches(cfg, 7)
    batches = train_batches(cfg, 3)
    assert [len(b['inputs']) for b in batches] == [2, 1]
    again = train_batches(cfg, 3)
    assert torch.equal(batches[0]['inputs'][0], again[0]['inputs'][0])


def test_the_models_own_control_counts_only_what_ran(model):
    """``control=None``: the model's own control is used, and what it runs
    to find it (a searched control counts decoders' costs with forwards
    in eval mode, edge's included here although edge is off) is not a
    BatchNorm that ran: only the sub-network's are returned."""
    batches = _batches()
    control = _control(model)
    fresh = copy.deepcopy(model)
    # Empty cost caches: the decoders are counted again.
    fresh.complexity._cache.clear()
    fresh._shapes.clear()

    def searched_control(img_hw):
        for task in fresh.tasks:
            fresh.width_flops(task, 1.0, img_hw)
        return control

    fresh.control = searched_control
    stats = recalibrate_bn(fresh, batches)
    expect = _hooked_statistics(model, control, batches)
    assert not any('edge' in name for name in expect)
    assert {k.rsplit('.', 1)[0] for k in stats} == set(expect)
    for name, (mean, var, n) in expect.items():
        assert int(stats[f'{name}.num_batches_tracked']) == n
        torch.testing.assert_close(stats[f'{name}.running_mean'], mean,
                                   rtol=1e-4, atol=1e-5)


def _hook_runner(model, cfg, batches):
    from mmengine.logging import MMLogger
    return SimpleNamespace(model=model, cfg=cfg, test_dataloader=batches,
                           logger=MMLogger.get_current_instance())


def test_hook_tests_with_the_subnetworks_statistics_then_restores(
        model, tiny_synthetic):
    """``BNRecalibrationHook`` (``tools/test.py --recalibrate-bn``): for
    the test the model holds what ``recalibrate_bn`` gives for the
    sub-network of the first test batch, nothing else changed; after it,
    the trained statistics again; a batch that runs another sub-network
    is refused."""
    from mmengine.dataset import pseudo_collate

    from mmadamtl.apis import build_test_dataset
    from mmadamtl.engine.hooks import BNRecalibrationHook
    cfg = copy.deepcopy(model.cfg)
    cfg.train_dataloader.dataset.data_root = tiny_synthetic
    test_set = build_test_dataset(cfg, tiny_synthetic)
    batch = pseudo_collate([test_set[0], test_set[1]])
    net = copy.deepcopy(model)
    trained = {k: v.clone() for k, v in net.state_dict().items()}
    hook = BNRecalibrationHook(num_images=3, seed=4)
    runner = _hook_runner(net, cfg, [batch])
    with net.runtime(subnet=SUBNET):
        control = net.control((64, 64))
        hook.before_test(runner)
        expect = recalibrate_bn(model, train_batches(cfg, 3, seed=4),
                                control)
        state = net.state_dict()
        changed = {k for k in state if not torch.equal(state[k], trained[k])}
        assert changed and changed <= set(expect)
        for k, v in expect.items():
            torch.testing.assert_close(state[k], v, rtol=1e-5, atol=1e-6)
        hook.before_test_iter(runner, 0, batch)
    # Outside the settings another sub-network runs (the widest).
    with pytest.raises(ValueError, match='test batch 3 .*another '
                       'sub-network'):
        hook.before_test_iter(runner, 3, batch)
    # The refusal put the trained statistics back; so does the test's end.
    for k, v in net.state_dict().items():
        assert torch.equal(v, trained[k]), k
    with net.runtime(subnet=SUBNET):
        hook.before_test(runner)
    assert any(not torch.equal(v, trained[k])
               for k, v in net.state_dict().items())
    hook.after_test(runner)
    for k, v in net.state_dict().items():
        assert torch.equal(v, trained[k]), k
    with pytest.raises(ValueError, match='test set is empty'):
        hook.before_test(_hook_runner(net, cfg, []))


def test_hook_refuses_other_models_and_bad_counts(tiny_synthetic):
    from mmadamtl.engine.hooks import BNRecalibrationHook
    static = init_model(TINY_STATIC)
    hook = BNRecalibrationHook(num_images=2)
    with pytest.raises(TypeError, match='controllable model.*'
                       'MultiTaskEncoderDecoder'):
        hook.before_test(_hook_runner(static, static.cfg, []))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match='num_images'):
            BNRecalibrationHook(num_images=bad)
    with pytest.raises(ValueError, match='batch_size'):
        BNRecalibrationHook(batch_size=0)
