"""LearningGuardHook: a run that cannot learn stops, naming the culprit;
an AMP warm-up does not trip it."""
import copy
import glob
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmadamtl.engine.hooks import LearningGuardHook, NonFiniteTrainingError
from tests.conftest import ROOT, TINY_CONFIG


def _runner(tiny_synthetic, tmp_path, patience=3, max_iters=6,
            checkpoint_interval=100):
    cfg = Config.fromfile(TINY_CONFIG)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = tiny_synthetic
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = 100
    cfg.default_hooks.checkpoint.interval = checkpoint_interval
    cfg.default_hooks.learning_guard.patience = patience
    cfg.experiment_name = tmp_path.name
    return Runner.from_cfg(cfg)


def test_on_by_default_in_every_shipped_recipe():
    configs = sorted(
        p for p in glob.glob(f'{ROOT}/configs/**/*.py', recursive=True)
        if '/_base_/' not in p)
    assert len(configs) > 50
    for path in configs:
        hooks = Config.fromfile(path).default_hooks
        assert hooks.learning_guard == dict(type='LearningGuardHook',
                                            patience=20), path
        assert hooks.checkpoint.type == 'AtomicCheckpointHook', path
        assert hooks.iter_seed.type == 'IterSeedHook', path
    # A leaf's own hooks are still merged over the base's.
    cfg = Config.fromfile(f'{ROOT}/configs/adamtl_swin_pascal.py')
    assert cfg.default_hooks.checkpoint.interval == cfg.val_interval


def _poison(model):
    """Add a NaN loss term that carries gradient (so a float32 step
    spreads it to the weights)."""
    loss = model.loss

    def poisoned(inputs, data_samples):
        losses = loss(inputs, data_samples)
        losses['loss_poison'] = losses['depth.loss_depth'] * float('nan')
        return losses

    model.loss = poisoned


def test_nan_loss_term_stops_the_run_naming_it(tiny_synthetic, tmp_path):
    runner = _runner(tiny_synthetic, tmp_path)
    _poison(runner.model)
    with pytest.raises(NonFiniteTrainingError) as e:
        runner.train()
    msg = str(e.value)
    assert 'loss_poison (3x)' in msg and '1 to 3' in msg
    assert 'first non-finite at iteration 1: loss_poison, loss;' in msg
    assert runner.iter == 2  # stopped in the third iteration, not later


def test_a_nan_model_is_never_saved(tiny_synthetic, tmp_path):
    """A float32 step on a NaN loss makes every weight NaN: the
    checkpoint of iteration 2 is refused (the streak is shorter than the
    patience), and no file is written."""
    runner = _runner(tiny_synthetic, tmp_path, patience=50, max_iters=4,
                     checkpoint_interval=2)
    _poison(runner.model)
    with pytest.raises(NonFiniteTrainingError,
                       match=r'refusing to save the checkpoint of iteration '
                       r'2: \d+ parameter\(s\) hold NaN.*loss_poison'):
        runner.train()
    assert not list(tmp_path.glob('*.pth'))
    assert not (tmp_path / 'last_checkpoint').exists()


def test_finite_iterations_reset_the_count(tiny_synthetic, tmp_path):
    """Two lost iterations out of every three never reach patience 3."""
    runner = _runner(tiny_synthetic, tmp_path, max_iters=6)
    model = runner.model
    loss = model.loss
    calls = []

    def sometimes(inputs, data_samples):
        calls.append(1)
        losses = loss(inputs, data_samples)
        if len(calls) % 3:
            losses['loss_poison'] = torch.tensor(float('inf'))
        return losses

    model.loss = sometimes
    runner.train()
    assert len(calls) == 6


class _Scaler:
    """A loss scaler stand-in: a real ``torch.amp.GradScaler`` on CPU."""

    def __init__(self, init_scale):
        self.scaler = torch.amp.GradScaler('cpu', init_scale=init_scale,
                                           growth_interval=1000)

    def is_enabled(self):
        return True

    def get_scale(self):
        return self.scaler.get_scale()


def _amp_iterations(hook, grad_size, iterations):
    """Train ``w`` with a real GradScaler whose initial scale overflows
    float32 gradients of ``grad_size`` until it has halved enough: the
    AMP warm-up. Returns the number of steps the scaler skipped."""
    w = torch.nn.Parameter(torch.ones(4))
    opt = torch.optim.SGD([w], lr=1e-3)
    scaler = _Scaler(2.**100)
    runner = SimpleNamespace(optim_wrapper=SimpleNamespace(
        loss_scaler=scaler), iter=0)
    skipped = 0
    for i in range(iterations):
        runner.iter = i
        hook.before_train_iter(runner, i)
        loss = (w * grad_size).sum()
        opt.zero_grad()
        scaler.scaler.scale(loss).backward()
        before = scaler.get_scale()
        scaler.scaler.step(opt)
        scaler.scaler.update()
        skipped += scaler.get_scale() < before
        hook.after_train_iter(runner, i, outputs=dict(loss=loss.detach()))
    return skipped


def test_amp_warm_up_does_not_trip_but_a_stuck_scaler_does():
    # 2^100 * 1e12 overflows float32 (3.4e38) until the scale is below
    # ~2^88: a dozen skipped steps, then training goes on.
    skipped = _amp_iterations(LearningGuardHook(patience=20), 1e12, 30)
    assert 5 <= skipped < 20
    with pytest.raises(NonFiniteTrainingError,
                       match=r'optimizer steps skipped by the AMP loss'):
        _amp_iterations(LearningGuardHook(patience=5), 1e12, 30)


def test_patience_is_checked():
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match='patience'):
            LearningGuardHook(patience=bad)
    assert copy.deepcopy(LearningGuardHook(3)).patience == 3
