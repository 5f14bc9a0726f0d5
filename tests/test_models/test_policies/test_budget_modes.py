"""AdaMTL you can trust: training decisions equal inference decisions,
budgets that hold (target and cap), fp16 noise, skipped empty blocks."""
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmseg.registry import MODELS

from mmadamtl.models.backbones import Control
from mmadamtl.models.layers import adamtl_runners
from mmadamtl.models.policies import (CALIBRATION_GRID, calibrate_budget,
                                      gumbel_sigmoid, policy_budget)
from mmadamtl.models.utils import swin_cost

from tests.test_models.test_backbones.test_adaptive_swin import (
    SWIN, TASK_NAMES, _shuffle_policy, _swin)


@pytest.mark.parametrize('policy', [
    dict(task_mode='single'),
    dict(task_mode='per_task', tasks=TASK_NAMES),
    dict(task_mode='per_task', tasks=TASK_NAMES, block_select=False),
])
def test_noise_free_training_decisions_equal_inference(policy):
    """With the Gumbel noise off, training (BlendRunner) runs exactly the
    block and token decisions inference (SkipRunner) runs."""
    # No drop path: training and inference run the same blocks.
    ada = _swin(policy=dict(policy, noise=0.), drop_path_rate=0.)
    _shuffle_policy(ada, scale=3.0)
    x = torch.randn(3, 3, 64, 64)
    tasks = ['semseg', 'normals', 'edge'] if 'tasks' in policy else None
    ada.train()
    train_out, train = ada.encode(
        x, Control(budget=0.5, tasks=tasks, budget_mode='input'))
    ada.eval()
    with torch.no_grad():
        eval_out, test = ada.encode(
            x, Control(budget=0.5, tasks=tasks, budget_mode='input'))
    # Decisions vary: otherwise the test would not test much.
    assert 0 < float(test.blocks.mean()) < 1 or policy.get(
        'block_select') is False
    assert 0 < float(test.token_fraction.mean()) < 1
    assert torch.equal(train.blocks.detach(), test.blocks)
    assert torch.allclose(train.block_fraction.detach(),
                          test.block_fraction)
    assert torch.allclose(train.deterministic_fraction.detach(),
                          test.block_fraction)
    for a, b in zip(train.token_maps, test.token_maps):
        assert torch.equal(a, b)
    for a, b in zip(train_out, eval_out):
        assert torch.allclose(a.detach(), b, atol=1e-5)


def test_per_task_training_decision_is_or_of_hard_samples():
    from mmadamtl.models.policies import PolicyHead
    head = PolicyHead(embed_dims=[8], depths=[2], task_mode='per_task',
                      tasks=['semseg', 'depth'], tau=5.0).train()
    logits = torch.tensor([[[-12., 12.], [-12., -12.]]],
                          requires_grad=True)  # (B, T, depth)
    torch.manual_seed(0)
    keep = head.decide(logits, 1, [0, 1])
    # The soft union of AdaMTL's old rule would keep block 0 (one task far
    # below 0 and one below 0 still give 1 - prod(1 - p) > 0.5 at tau 5):
    # the OR of the hard samples keeps neither task's "no".
    assert keep.tolist() == [[0., 1.]]
    keep.sum().backward()
    assert (logits.grad != 0).all()
    # Many draws: training keeps a block exactly when a task's noised
    # sample does.
    head.noise = 1.
    torch.manual_seed(1)
    z = torch.randn(500, 2, 2)
    torch.manual_seed(2)
    keep = head.decide(z, 1, [0, 1])
    torch.manual_seed(2)
    p = gumbel_sigmoid(z, head.tau)
    assert torch.equal(keep, (p > 0.5).any(1).float())


def test_gumbel_noise_is_drawn_in_float32():
    z = torch.zeros(20000, dtype=torch.float16)
    torch.manual_seed(0)
    p = gumbel_sigmoid(z, 1.0)
    assert p.dtype == torch.float16 and torch.isfinite(p).all()
    # fp16 noise would round 1 - 1e-6 to 1 and give -log(-log 1) = inf.
    assert 0.45 < float((p > 0.5).float().mean()) < 0.55


def test_block_without_selected_tokens_is_skipped_whole():
    ada = _swin(policy=dict()).eval()
    calls = []
    ada.stages[0].blocks[1].attn.register_forward_hook(
        lambda m, a, o: calls.append(a[0].shape[0]))

    def token_decisions(stage, block, x, budget, index, **kw):
        t = x.new_ones(x.shape[:2])
        if (stage, block) == (0, 1):
            t[0] = 0  # image 0 selects no token of block (0, 1)
        return t

    ada.policy.token_decisions = token_decisions
    with torch.no_grad():
        _, stats = ada.encode(
            torch.randn(2, 3, 64, 64), Control(budget=0.5,
                                               budget_mode='input'))
    # Attention of that block ran for image 1 only; the block counts as
    # skipped for image 0, and its cost is not charged.
    assert calls == [1]
    assert stats.blocks[0, 1] == 0 and stats.blocks[1, 1] == 1
    cost = swin_cost(ada, (64, 64))
    assert float(stats.encoder_flops[1] - stats.encoder_flops[0]) == \
        pytest.approx(cost.stages[0].blocks[1].full +
                      ada.policy.token_selector_flops(0, 256), rel=1e-5)


def _cap_reference(scores, costs, allowance):
    """Independent greedy: per image and stage, the blocks with a positive
    score in order of decreasing score, kept while their full cost fits."""
    keeps = []
    for i in range(scores[0].shape[0]):
        left, keep = allowance[i], []
        for stage, s in enumerate(scores):
            k = [0.] * s.shape[1]
            for j in sorted(range(s.shape[1]), key=lambda j: -s[i, j]):
                c = costs[stage][j]
                if s[i, j] > 0 and c <= left:
                    k[j], left = 1., left - c
            keep += k
        keeps.append(keep)
    return torch.tensor(keeps)


@pytest.mark.parametrize('cap', [0.35, 0.5, 0.8])
def test_cap_mode_bounds_every_image(cap):
    ada = _swin(policy=dict(init_logit=3.0))
    _shuffle_policy(ada, scale=2.0)
    # Biases up: the policy alone would run (nearly) everything.
    with torch.no_grad():
        for m in ada.policy.modules():
            if hasattr(m, 'out'):
                m.out.bias.fill_(2.0)
    ada.eval()
    x = torch.randn(4, 3, 64, 64)
    scores = []
    orig = ada.policy.block_scores

    def spy(*args, **kw):
        s = orig(*args, **kw)
        scores.append(s.clone())
        return s

    ada.policy.block_scores = spy
    with torch.no_grad():
        _, stats = ada.encode(
            x, Control(budget=0.5, cap=cap, budget_mode='input'))
    static = stats.static_flops
    assert (stats.encoder_flops <= cap * static * (1 + 1e-6)).all()
    # The blocks kept are the reference greedy's.
    cost = swin_cost(ada, (64, 64))
    pol = ada.policy
    costs = [[b.full + pol.token_selector_flops(i, b.tokens)
              for b in s.blocks] for i, s in enumerate(cost.stages)]
    fixed = cost.fixed_total + sum(
        pol.block_selector_flops(i, s.blocks[0].tokens)
        for i, s in enumerate(cost.stages))
    ref = _cap_reference(scores, costs, [cap * cost.total - fixed] * 4)
    assert torch.equal(stats.blocks, ref)
    # Without the cap the same images exceed it.
    with torch.no_grad():
        _, stats_ = ada.encode(x, Control(budget=0.5, budget_mode='input'))
    assert (stats_.encoder_flops > cap * static).any()


def test_cap_below_fixed_cost_is_an_error():
    ada = _swin(policy=dict()).eval()
    with pytest.raises(ValueError, match='below what always runs'):
        with torch.no_grad():
            _, stats_ = ada.encode(
                torch.randn(1, 3, 64, 64), Control(budget=0.5, cap=0.01,
                                                   budget_mode='input'))
    with pytest.raises(ValueError, match='inference only'):
        ada.train().encode(
            torch.randn(1, 3, 64, 64), Control(budget=0.5, cap=0.5,
                                               budget_mode='input'))


def test_policy_budget_inverts_the_curve():
    ada = _swin(policy=dict())
    policy = ada.policy
    grid = np.asarray(CALIBRATION_GRID)
    policy.budget_curve.copy_(torch.as_tensor(0.2 + 0.6 * grid))
    req = torch.tensor([0.32, 0.5, 0.71])
    expected = (req.double() - 0.2) / 0.6
    assert torch.allclose(policy_budget(policy, req).double(), expected,
                          atol=1e-6)
    with pytest.warns(UserWarning, match='below the smallest share'):
        low = policy_budget(policy, torch.tensor([0.1]))
    assert float(low) == pytest.approx(CALIBRATION_GRID[0])
    with pytest.warns(UserWarning, match='above the largest share'):
        assert float(policy_budget(policy, torch.tensor([0.95]))) == 1.0
    policy.budget_curve.fill_(float('nan'))
    with pytest.warns(UserWarning, match='not measured'):
        assert float(policy_budget(policy, torch.tensor([0.4]))) == \
            pytest.approx(0.4)


def test_policy_budget_equals_numpy_interp_on_flat_curves():
    """The tensor-operation inversion equals ``np.interp`` over the
    curve's distinct values (first grid input of a flat stretch), on
    curves with flat stretches, requests on the knots, outside the curve,
    and a constant curve."""
    ada = _swin(policy=dict())
    policy = ada.policy
    grid = np.asarray(CALIBRATION_GRID)
    rng = np.random.default_rng(0)
    curves = [np.full(50, 0.4)]
    for _ in range(20):
        steps = rng.choice([0., 0., 0.01, 0.03], size=50)
        curves.append(np.minimum(np.maximum.accumulate(
            0.1 + np.cumsum(steps)), 1.))
    for curve in curves:
        policy.budget_curve.copy_(torch.as_tensor(curve))
        curve = policy.budget_curve.double().numpy()     # as stored
        req = np.concatenate([rng.uniform(0.01, 1., 30),
                              curve[rng.integers(0, 50, 10)]])
        xs, first = np.unique(curve, return_index=True)
        expected = np.interp(req, xs, grid[first], right=1.0) \
            if len(xs) > 1 else np.full_like(req, grid[first[0]])
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            got = policy_budget(policy, torch.as_tensor(req))
        np.testing.assert_array_equal(got.numpy(), expected)


def test_target_mode_meets_the_budget_on_average():
    """Calibrated on a set of images, the executed share of block compute
    averaged over them is the requested budget."""
    ada = _swin(policy=dict(token_hidden=8, block_hidden=8))
    _shuffle_policy(ada, scale=2.0)
    ada.eval()
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(8, 3, 64, 64, generator=g) for _ in range(2)]
    with torch.no_grad():
        curve = calibrate_budget(ada, batches)
    assert np.all(np.diff(curve) >= 0)
    assert torch.allclose(ada.policy.budget_curve.double(),
                          torch.as_tensor(curve))
    for requested in (0.4, 0.55, 0.7):
        if not curve[0] < requested < curve[-1]:
            continue
        b = policy_budget(ada.policy, torch.full((8, ), requested))
        shares = []
        with torch.no_grad():
            for x in batches:
                _, stats_ = ada.encode(
                    x, Control(budget=b, budget_mode='input'))
                shares.append(stats_.block_fraction)
        share = float(torch.cat(shares).mean())
        assert abs(share - requested) < 0.05, (requested, share, curve)


def test_calibration_restores_training_mode():
    ada = _swin(policy=dict()).train()
    calibrate_budget(ada, [torch.randn(1, 3, 64, 64)])
    assert ada.training and ada.policy.training


def _count_stats():
    return SimpleNamespace(
        block_fraction=torch.tensor([0.5, 0.9]),
        token_fraction=torch.tensor([0.4, 1.0]),
        deterministic_fraction=torch.tensor([0.7, 0.8]),
        keeps=torch.tensor([[1., 1., 0., 1.], [1., 1., 1., 1.]]),
        token_shares=torch.tensor([[1., .5, 0., .5], [.5, .5, .5, .5]]),
        widths=torch.tensor([32., 32., 64., 64.]),
        block_tokens=torch.tensor([16., 16., 4., 4.]))


def test_count_and_deterministic_budget_loss_values():
    stats = _count_stats()
    budgets = torch.tensor([0.3, 0.9])
    det = MODELS.build(dict(type='BudgetLoss', token_weight=0.,
                            deterministic_weight=2.))(stats, budgets)
    assert float(det) == pytest.approx(
        (0.2**2 + 0) / 2 + 2 * (0.4**2 + 0.1**2) / 2)
    n_b = np.array([0.75, 1.0])
    # Width x token count: weights 512, 512, 256, 256.
    count = MODELS.build(dict(type='BudgetLoss', mode='count',
                              token_weight=1.0))(stats, budgets)
    n_t = np.array([(512 + 256 + 0 + 128) / 1536, 0.5])
    assert float(count) == pytest.approx(
        np.mean((n_b - 0.9)**2) + np.mean((n_t - 0.5)**2))
    # Width only.
    width = MODELS.build(dict(type='BudgetLoss', mode='count',
                              token_count_weighted=False, token_weight=1.0))
    n_t = np.array([(32 + 16 + 0 + 32) / 192, 0.5])
    assert float(width(stats, budgets)) == pytest.approx(
        np.mean((n_b - 0.9)**2) + np.mean((n_t - 0.5)**2))
    flat = MODELS.build(dict(type='BudgetLoss', mode='count',
                             width_weighted=False,
                             token_count_weighted=False, token_weight=1.0))
    n_t = np.array([0.5, 0.5])
    assert float(flat(stats, budgets)) == pytest.approx(
        np.mean((n_b - 0.9)**2) + np.mean((n_t - 0.5)**2))
    with pytest.raises(ValueError, match='mode'):
        MODELS.build(dict(type='BudgetLoss', mode='macs'))


def test_count_token_term_is_adamtls_formula():
    """The count mode's token share equals AdaMTL's
    ``get_tokens_select_stats`` written out over per-block token masks
    (B, N, 1): ``sum_k w_k sum(mask_k) / sum_k w_k N_k``, with and
    without the stage widths."""
    g = torch.Generator().manual_seed(0)
    depths, widths, tokens = (2, 2, 6, 2), (96, 192, 384, 768), \
        (3136, 784, 196, 49)
    masks = [[(torch.rand(3, n, 1, generator=g) < p).float()
              for _ in range(d)]
             for d, n, p in zip(depths, tokens, (0.9, 0.6, 0.4, 0.2))]

    def official(weighted):
        active, total = 0, 0
        for stage, w in zip(masks, widths):
            w = w if weighted else 1
            for head in stage:
                active = active + w * head.sum(dim=(1, 2))
                total += w * head.shape[1]
        return active / total

    flat = [m for stage in masks for m in stage]
    stats = SimpleNamespace(
        keeps=torch.ones(3, len(flat)),
        token_shares=torch.stack([m.mean(dim=(1, 2)) for m in flat], 1),
        widths=torch.tensor([float(w) for w, d in zip(widths, depths)
                             for _ in range(d)]),
        block_tokens=torch.tensor([float(n) for n, d in zip(tokens, depths)
                                   for _ in range(d)]))
    for weighted in (True, False):
        # Block term zero (every block kept, target 1): the loss is the
        # token term alone.
        loss = MODELS.build(dict(type='BudgetLoss', mode='count',
                                 block_target=1.0, token_weight=1.0,
                                 token_target=0.5,
                                 width_weighted=weighted))
        expected = ((official(weighted) - 0.5)**2).mean()
        assert float(loss(stats, torch.ones(3))) == pytest.approx(
            float(expected), rel=1e-5)


def test_batch_reduction_drives_the_mean():
    """``reduction='batch'``: the batch's mean to the mean budget, images
    free around it."""
    stats = _count_stats()
    budgets = torch.tensor([0.6, 0.6])
    loss = MODELS.build(dict(type='BudgetLoss', reduction='batch',
                             token_weight=0.5, deterministic_weight=2.))
    # Means: blocks 0.7, tokens 0.7, deterministic 0.75.
    assert float(loss(stats, budgets)) == pytest.approx(
        0.1**2 + 2 * 0.15**2 + 0.5 * 0.1**2)
    image = MODELS.build(dict(type='BudgetLoss', token_weight=0.5,
                              deterministic_weight=2.))
    assert float(image(stats, budgets)) == pytest.approx(
        (0.1**2 + 0.3**2) / 2 + 2 * (0.1**2 + 0.2**2) / 2 +
        0.5 * (0.2**2 + 0.4**2) / 2)
    count = MODELS.build(dict(type='BudgetLoss', mode='count',
                              reduction='batch', token_weight=1.0))
    n_t = ((512 + 256 + 0 + 128) / 1536 + 0.5) / 2
    assert float(count(stats, budgets)) == pytest.approx(
        (0.875 - 0.9)**2 + (n_t - 0.5)**2, rel=1e-5)
    with pytest.raises(ValueError, match='reduction'):
        MODELS.build(dict(type='BudgetLoss', reduction='sum'))


def test_count_loss_trains_from_a_real_pass():
    ada = _swin(policy=dict()).train()
    x = torch.randn(2, 3, 64, 64)
    _, stats_ = ada.encode(x, Control(budget=0.5, budget_mode='input'))
    loss = MODELS.build(dict(type='BudgetLoss', mode='count'))(
        stats_, torch.tensor([0.5, 0.5]))
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in ada.policy.parameters())
    assert adamtl_runners.any_selected(torch.tensor([[0., 1.]])).item() == 1


def test_count_loss_of_a_real_pass_is_adamtls_formula():
    """The count mode's token term on a real pass's statistics: each
    block weighted by its width times its token count as AdaMTL's
    ``get_tokens_select_stats`` does, with the widths and token counts
    worked out here from the configuration and the input size."""
    ada = _swin(policy=dict()).train()
    _shuffle_policy(ada)
    x = torch.randn(3, 3, 64, 64)
    _, stats_ = ada.encode(x, Control(budget=0.5, budget_mode='input'))
    # Stage s: embed_dims * 2**s channels on (64 / 4 / 2**s)**2 tokens.
    widths = [32 * 2**s for s, d in enumerate(SWIN['depths'])
              for _ in range(d)]
    tokens = [(64 // 4 // 2**s)**2 for s, d in enumerate(SWIN['depths'])
              for _ in range(d)]
    assert stats_.widths.tolist() == widths
    assert stats_.block_tokens.tolist() == tokens
    shares = stats_.token_shares.detach().double().numpy()
    keeps = stats_.keeps.detach().double().numpy()
    w = np.array(widths, float) * np.array(tokens, float)
    n_t = (shares * w).sum(1) / w.sum()
    n_b = keeps.mean(1)
    loss = MODELS.build(dict(type='BudgetLoss', mode='count',
                             block_target=0.7, token_target=0.4,
                             token_weight=0.5))(stats_, torch.full((3,), .5))
    assert float(loss) == pytest.approx(
        np.mean((n_b - 0.7)**2) + 0.5 * np.mean((n_t - 0.4)**2), rel=1e-5)
    # Images differ (the shuffled selectors), so the check is not on a
    # constant share.
    assert np.ptp(shares.sum(1)) > 0


def test_random_policy_control_executes_the_share():
    ada = _swin(policy=dict()).eval()
    # 128 px: the last stage has 16 tokens, so that a kept block with no
    # token drawn (skipped whole) is rare.
    x = torch.randn(8, 3, 128, 128)
    shares = []
    for seed in (0, 0, 1):
        ada.set_random_policy(0.5, seed=seed)
        with torch.no_grad():
            _, stats_ = ada.encode(x, Control(budget=0.9, budget_mode='input'))
        shares.append(stats_)
    # Reproducible by seed, different across seeds.
    assert torch.equal(shares[0].blocks, shares[1].blocks)
    assert not torch.equal(shares[0].blocks, shares[2].blocks)
    mean = float(torch.cat([s.block_fraction for s in shares]).mean())
    assert abs(mean - 0.5) < 0.06, mean
    # p (attn + p mlp) = share (attn + mlp): the keep rate of both kinds.
    cost = swin_cost(ada, (128, 128))
    p = ada.random_policy.keep_rate
    assert p * (cost.attn_total + p * cost.mlp_total) == pytest.approx(
        0.5 * cost.blocks_total)
    ada.set_random_policy(None)
    with torch.no_grad():
        _, stats_ = ada.encode(x, Control(budget=0.9, budget_mode='input'))
    assert stats_.blocks.mean() > 0.9
    with pytest.raises(ValueError, match='share'):
        ada.set_random_policy(1.5)
