"""The segmentor with an adaptive backbone: budgets, tasks, GFLOPs."""
import copy

from types import SimpleNamespace

import pytest
import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config
from mmseg.registry import HOOKS, MODELS

from mmadamtl.evaluation.metrics.multi_task_metric import delta_m
from mmadamtl.models.policies.policy_head import split_budget
from tests.conftest import ROOT
from tests.test_models.test_segmentors.test_multi_task_encoder_decoder \
    import _sample

ADAPTIVE = f'{ROOT}/tests/configs/tiny_adamtl_swin_synthetic.py'


def _build(cfg_model, **test_cfg):
    cfg = copy.deepcopy(cfg_model)
    cfg.test_cfg = dict(cfg.get('test_cfg') or {}, **test_cfg)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()


@pytest.fixture(scope='module')
def adaptive_cfg():
    return Config.fromfile(ADAPTIVE).model


def test_static_gflops_agree_with_mmengine_counter(tiny_cfg):
    model = _build(tiny_cfg.model)
    x = torch.rand(2, 3, 64, 64)
    samples = [_sample(64, 64, seed=i) for i in range(2)]
    with torch.no_grad():
        out = model.predict(x, samples)
        counted = get_model_complexity_info(
            model, inputs=(x[:1], ), show_table=False,
            show_arch=False)['flops']
    for s in out:
        assert s.metainfo['gflops'] * 1e9 == pytest.approx(counted, rel=0.02)
        assert s.metainfo['encoder_gflops'] < s.metainfo['gflops']


def test_budget_none_is_the_static_model(tiny_cfg, adaptive_cfg):
    static = _build(tiny_cfg.model)
    adaptive = _build(adaptive_cfg, budget=None)
    adaptive.load_state_dict(static.state_dict(), strict=False)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a = static.predict(x, [_sample(64, 64)])[0]
        b = adaptive.predict(x, [_sample(64, 64)])[0]
    assert torch.equal(a.pred_depth.data, b.pred_depth.data)
    assert a.metainfo['gflops'] == b.metainfo['gflops']


def test_requested_tasks_and_budget_steer_compute(adaptive_cfg):
    model = _build(adaptive_cfg, budget=0.5, tasks=['semseg', 'normals'])
    ran = []
    for task, dec in model.decode_head.decoders.items():
        dec.register_forward_hook(lambda m, a, o, t=task: ran.append(t))
    # A policy that skips the second block of every stage at budget 0.5.
    policy = model.backbone.policy

    def block_decisions(stage, x, hw, budget, index):
        keep = x.new_ones(x.shape[0], 2)
        # (The runner hands the budget with its terms, BudgetTerms.)
        keep[split_budget(budget)[0] < 1, 1] = 0
        return keep

    policy.block_decisions = block_decisions
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        half = model.predict(x, [_sample(64, 64, seed=i) for i in range(2)])
    assert sorted(set(ran)) == ['normals', 'semseg']
    for s in half:
        assert s.pred_sem_seg is not None and 'pred_depth' not in s
        assert s.metainfo['policy']['block_keep'] == [0.5] * 4
    model.set_budget(None)
    model.set_active_tasks(None)
    with torch.no_grad():
        full = model.predict(x, [_sample(64, 64, seed=i) for i in range(2)])
    assert full[0].metainfo['encoder_gflops'] > \
        half[0].metainfo['encoder_gflops']
    assert full[0].metainfo['gflops'] - full[0].metainfo['encoder_gflops'] > \
        half[0].metainfo['gflops'] - half[0].metainfo['encoder_gflops']


@pytest.mark.parametrize('bad', [0, 1.01, -1, 'all'])
def test_bad_budget_in_test_cfg_or_set_budget(adaptive_cfg, bad):
    with pytest.raises(ValueError, match='budget'):
        _build(adaptive_cfg, budget=bad)
    model = _build(adaptive_cfg)
    with pytest.raises(ValueError, match='budget'):
        model.set_budget(bad)
    assert model.budget == 0.5


def test_budget_on_static_model_and_unknown_task(tiny_cfg, adaptive_cfg):
    model = _build(tiny_cfg.model)
    with pytest.raises(ValueError, match='adaptive backbone'):
        model.set_budget(0.5)
    model.set_budget(None)
    adaptive = _build(adaptive_cfg)
    with pytest.raises(ValueError, match="unknown task 'surface'"):
        adaptive.set_active_tasks(['semseg', 'surface'])


def test_loss_adds_budget_loss(adaptive_cfg):
    model = _build(adaptive_cfg).train()
    model.set_train_budgets(torch.tensor([0.4, 0.6]))
    samples = [_sample(64, 64, seed=i) for i in range(2)]
    losses = model.loss(torch.rand(2, 3, 64, 64), samples)
    assert 'loss_budget' in losses and 'semseg.loss_ce' in losses
    assert float(losses['budget_target']) == pytest.approx(0.5)
    assert 0 < float(losses['executed_fraction']) <= 1
    losses['loss_budget'].backward()
    grads = [p.grad for p in model.backbone.policy.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_budget_schedule_hook():
    hook = HOOKS.build(dict(type='BudgetScheduleHook',
                            budget_range=(0.25, 0.75), anneal_iters=100,
                            tau=(5.0, 1.0)))
    assert hook.current(0) == (1.0, 1.0, 5.0)
    low, high, tau = hook.current(50)
    assert (low, high, tau) == pytest.approx((0.625, 0.875, 3.0))
    assert hook.current(500) == pytest.approx((0.25, 0.75, 1.0))
    with pytest.raises(ValueError, match='budget_range'):
        HOOKS.build(dict(type='BudgetScheduleHook', budget_range=(0, 0.5)))
    with pytest.raises(ValueError, match='exactly one'):
        HOOKS.build(dict(type='BudgetScheduleHook'))
    with pytest.raises(ValueError, match='budget'):
        HOOKS.build(dict(type='BudgetScheduleHook', budget=2))
    # anneal_ratio: the anneal's share of the run, set at before_train.
    hook = HOOKS.build(dict(type='BudgetScheduleHook', budget=0.5,
                            anneal_ratio=0.4))
    hook.before_train(SimpleNamespace(max_iters=500))
    assert hook.anneal_iters == 200
    assert hook.current(100)[0] == pytest.approx(0.75)
    with pytest.raises(ValueError, match='not both'):
        HOOKS.build(dict(type='BudgetScheduleHook', budget=0.5,
                         anneal_iters=10, anneal_ratio=0.5))
    with pytest.raises(ValueError, match='anneal_ratio'):
        HOOKS.build(dict(type='BudgetScheduleHook', budget=0.5,
                         anneal_ratio=1.5))


def test_budget_schedule_hook_per_batch():
    """One budget per image by default, one per batch with per_batch;
    each drawn in the final range and reproducible by iteration."""
    got = []
    model = SimpleNamespace(adaptive=True,
                            set_policy_temperature=lambda tau: None,
                            set_train_budgets=got.append)
    runner = SimpleNamespace(
        model=model, iter=7,
        message_hub=SimpleNamespace(update_scalar=lambda *a: None))
    batch = dict(inputs=[None] * 4)
    for per_batch in (False, True, True):
        hook = HOOKS.build(dict(type='BudgetScheduleHook',
                                budget_range=(0.25, 0.75),
                                per_batch=per_batch))
        hook.before_train_iter(runner, 0, batch)
    per_image, per_batch, again = got
    assert per_image.shape == per_batch.shape == (4, )
    assert len(set(per_image.tolist())) == 4
    assert len(set(per_batch.tolist())) == 1
    assert torch.equal(per_batch, again)
    assert 0.25 <= float(per_batch[0]) <= 0.75


def test_delta_m():
    base = {'semseg': 50.0, 'normals': 20.0}
    metrics = {'semseg/mIoU': 55.0, 'normals/mean': 22.0}
    # (+10% - 10%) / 2
    assert delta_m(metrics, base) == pytest.approx(0.0)
    assert delta_m({'semseg/mIoU': 45.0}, base) == pytest.approx(-10.0)


def test_runtime_sets_and_restores(adaptive_cfg):
    model = _build(adaptive_cfg).eval()
    model.set_budget(0.5)
    with model.runtime(budget=None, tasks=['semseg']) as m:
        assert m is model
        assert model.budget is None and model.active_tasks == ['semseg']
        out = model.predict(torch.rand(1, 3, 64, 64))[0]
        assert 'pred_sem_seg' in out and 'pred_depth' not in out
    assert model.budget == 0.5 and model.active_tasks == model.tasks
    with model.runtime(tasks=['depth']):  # the budget stays
        assert model.budget == 0.5
    # Restored after an error, and bad values raise naming them.
    with pytest.raises(RuntimeError):
        with model.runtime(budget=0.3):
            raise RuntimeError
    assert model.budget == 0.5
    with pytest.raises(ValueError, match='1.5'):
        with model.runtime(budget=1.5):
            pass
    with pytest.raises(ValueError, match="unknown task 'surface'"):
        with model.runtime(tasks=['surface']):
            pass
    assert model.budget == 0.5 and model.active_tasks == model.tasks


def test_training_setters(adaptive_cfg, tiny_cfg):
    model = _build(adaptive_cfg)
    model.set_policy_temperature(2.5)
    assert model.backbone.policy.tau == 2.5
    with pytest.raises(ValueError, match='> 0'):
        model.set_policy_temperature(0)
    with pytest.raises(ValueError, match='training budgets'):
        model.set_train_budgets(torch.tensor([0.5, 0.0]))
    static = _build(tiny_cfg.model)
    with pytest.raises(ValueError, match='adaptive backbone'):
        static.set_policy_temperature(1.0)


def test_training_budgets_of_another_batch_size_raise(adaptive_cfg):
    model = _build(adaptive_cfg).train()
    model.set_train_budgets(torch.tensor([0.4, 0.6, 0.8]))
    samples = [_sample(64, 64, seed=i) for i in range(2)]
    with pytest.raises(ValueError, match='3 budgets for a batch of 2'):
        model.loss(torch.rand(2, 3, 64, 64), samples)


def test_budget_schedule_is_seeded_by_rank_and_iteration(monkeypatch):
    from mmadamtl.engine.hooks import budget_schedule_hook as mod
    hook = HOOKS.build(dict(type='BudgetScheduleHook',
                            budget_range=(0.25, 1.0), seed=3))

    def draw(rank, it):
        monkeypatch.setattr(mod, 'get_rank', lambda: rank)
        return torch.rand(4, generator=hook.generator(it))

    assert torch.equal(draw(0, 7), draw(0, 7))  # resumable
    assert not torch.equal(draw(0, 7), draw(1, 7))  # per rank
    assert not torch.equal(draw(0, 7), draw(0, 8))  # per iteration


def test_complexity_logger_runs_before_logger_hook():
    from mmengine.hooks import LoggerHook
    from mmengine.runner.priority import get_priority
    hook = HOOKS.build(dict(type='ComplexityLoggerHook'))
    assert get_priority(hook.priority) < get_priority(LoggerHook.priority)


def test_per_task_policy_gets_the_heads_tasks(adaptive_cfg):
    cfg = copy.deepcopy(adaptive_cfg)
    cfg.backbone.policy = dict(type='PolicyHead', task_mode='per_task')
    model = _build(cfg)
    assert model.backbone.policy.tasks == model.tasks


def test_training_one_task_trains_its_decoder_and_mask(adaptive_cfg):
    """TaskAlternationHook's turn: one task's loss, and only its column of
    a per-task policy gets gradients."""
    cfg = copy.deepcopy(adaptive_cfg)
    cfg.backbone.policy = dict(type='PolicyHead', task_mode='per_task')
    model = _build(cfg).train()
    model.set_train_tasks(['normals'])
    samples = [_sample(64, 64, seed=i) for i in range(2)]
    losses = model.loss(torch.rand(2, 3, 64, 64), samples)
    assert sorted(k for k in losses if k.endswith(('_ce', '_bce', 'normals',
                                                   '_depth'))) == [
        'normals.loss_normals']
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    col = model.tasks.index('normals')
    grad = model.backbone.policy.token_selectors[0][0].out.weight.grad
    assert grad[col].abs().sum() > 0
    others = [i for i in range(len(model.tasks)) if i != col]
    assert grad[others].abs().sum() == 0
    for task, dec in model.decode_head.decoders.items():
        got = any(p.grad is not None and p.grad.abs().sum() > 0
                  for p in dec.parameters())
        assert got == (task == 'normals'), task
    with pytest.raises(ValueError, match="unknown task 'sky'"):
        model.set_train_tasks(['sky'])


def test_training_one_task_with_all_losses(adaptive_cfg):
    """AdaMTL's own turn (``all_losses``): every task's loss, through the
    turn's mask alone; only its decoder learns, the others frozen until
    the next call, which restores exactly what it froze."""
    cfg = copy.deepcopy(adaptive_cfg)
    cfg.backbone.policy = dict(type='PolicyHead', task_mode='per_task')
    model = _build(cfg).train()
    user_frozen = model.decode_head.decoders['semseg'].parameters()
    user_frozen = next(iter(user_frozen))
    user_frozen.requires_grad_(False)
    samples = [_sample(64, 64, seed=i) for i in range(2)]
    x = torch.rand(2, 3, 64, 64)

    def grads(all_losses):
        model.zero_grad()
        torch.manual_seed(0)
        model.set_train_tasks(['normals'], all_losses=all_losses)
        losses = model.loss(x, samples)
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        return losses, model.backbone.patch_embed.projection.weight.grad

    single, enc_single = grads(False)
    enc_single = enc_single.clone()
    losses, enc_all = grads(True)
    tasks = {k.split('.')[0] for k in losses if k.startswith(
        tuple(model.tasks))}
    assert tasks == set(model.tasks) and len(single) < len(losses)
    # The other tasks' losses reach the encoder.
    assert not torch.allclose(enc_single, enc_all)
    col = model.tasks.index('normals')
    grad = model.backbone.policy.token_selectors[0][0].out.weight.grad
    assert grad[col].abs().sum() > 0
    assert grad[[i for i in range(len(model.tasks)) if i != col]].abs(
    ).sum() == 0
    for task, dec in model.decode_head.decoders.items():
        learns = [p.grad is not None for p in dec.parameters()]
        assert any(learns) == (task == 'normals'), task
    model.set_train_tasks(None)
    for task, dec in model.decode_head.decoders.items():
        for p in dec.parameters():
            assert p.requires_grad == (p is not user_frozen), task


def test_task_alternation_hook_schedule():
    hook = HOOKS.build(dict(type='TaskAlternationHook', alternate_ratio=0.5,
                            period=3, tasks=['semseg', 'depth']))
    model = SimpleNamespace(tasks=['semseg', 'normals', 'depth'])
    runner = SimpleNamespace(model=model, max_iters=20,
                             train_dataloader=[0] * 5)
    hook.before_train(runner)
    assert [hook.task_at(i) for i in range(12)] == \
        ['semseg'] * 3 + ['depth'] * 3 + ['semseg'] * 3 + ['depth'] + \
        [None] * 2
    hook = HOOKS.build(dict(type='TaskAlternationHook'))
    hook.before_train(runner)  # one epoch (5 iterations) per turn
    assert hook.task_at(4) == 'semseg' and hook.task_at(5) == 'normals'
    # The turn reaches the model with the hook's all_task_losses.
    calls = []
    model.set_train_tasks = lambda *args: calls.append(args)
    hook = HOOKS.build(dict(type='TaskAlternationHook', period=1,
                            all_task_losses=True))
    hook.before_train(runner)
    hook.before_train_iter(SimpleNamespace(model=model, iter=1), 0)
    hook.before_train_iter(SimpleNamespace(model=model, iter=15), 0)
    assert calls == [(['normals'], True), (None, True)]
    with pytest.raises(ValueError, match='alternate_ratio'):
        HOOKS.build(dict(type='TaskAlternationHook', alternate_ratio=2))


def test_subset_runs_the_union_of_exactly_its_masks(adaptive_cfg):
    """A per-task policy run on a subset of tasks executes, per block, the
    OR of those tasks' decisions (logit > 0), not the other tasks'."""
    cfg = copy.deepcopy(adaptive_cfg)
    cfg.backbone.policy = dict(type='PolicyHead', task_mode='per_task')
    model = _build(cfg)
    policy = model.backbone.policy
    subset = ['semseg', 'depth']
    cols = [model.tasks.index(t) for t in subset]
    others = [i for i in range(len(model.tasks)) if i not in cols]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 3 /
                    max(1, p.shape[-1])**0.5)
        # Every token selected: no kept block is skipped for lack of
        # tokens, so the executed blocks are exactly the planned ones.
        for stage in policy.token_selectors:
            for sel in stage:
                sel.out.bias.fill_(50.)
        # Block 1 of every stage: wanted by the other tasks only (whatever
        # the image), so the union over the subset must skip it.
        for sel in policy.block_selectors:
            bias = sel.out.bias.view(len(model.tasks), -1)
            bias[cols, 1] = -50.
            bias[others, 1] = 50.
    logits = []
    for sel in policy.block_selectors:
        sel.register_forward_hook(lambda m, a, o: logits.append(o))
    x = torch.rand(4, 3, 64, 64, generator=g)
    with torch.no_grad(), model.runtime(budget=0.5, tasks=subset,
                                        budget_mode='input'):
        out = model.predict(x)
    planned = torch.cat([(z[:, cols] > 0).any(1) for z in logits], 1)
    blocks = torch.tensor([s.metainfo['policy']['blocks'] for s in out])
    assert torch.equal(blocks, planned.float())
    assert 0 < float(blocks.mean()) < 1
    # Somewhere only another task wanted the block, and it did not run.
    other = torch.cat([(z[:, others] > 0).any(1) for z in logits], 1)
    assert ((other & ~planned) & (blocks == 0)).any()


def test_budget_modes_from_test_cfg(adaptive_cfg):
    """'target' is the default; a bad mode is named; the random control
    comes from test_cfg.random_policy."""
    cfg = copy.deepcopy(adaptive_cfg)
    cfg.test_cfg = dict(budget=0.5)
    assert MODELS.build(cfg).budget_mode == 'target'
    with pytest.raises(ValueError, match="'cheapest'"):
        _build(adaptive_cfg, budget_mode='cheapest')
    model = _build(adaptive_cfg, budget=0.9, budget_mode='input',
                   random_policy=dict(share=0.4, seed=3))
    assert model.backbone.random_policy.share == 0.4
    with torch.no_grad():
        out = model.predict(torch.rand(2, 3, 64, 64))
    assert out[0].metainfo['policy']['budget_mode'] == 'input'
    with pytest.raises(ValueError, match='cap'):
        with torch.no_grad(), model.runtime(budget_mode='cap'):
            model.predict(torch.rand(1, 3, 64, 64))


def test_iter_seed_hook_seeds():
    hook = HOOKS.build(dict(type='IterSeedHook'))
    assert hook.seed(0, 0, 5) == hook.seed(0, 0, 5)
    assert len({hook.seed(0, r, i) for r in range(3) for i in range(3)}) == 9
    assert hook.seed(1, 0, 5) != hook.seed(0, 0, 5)
