"""AdaptiveSwinTransformer, PolicyHead and BudgetLoss."""
import pytest
import torch
from mmseg.registry import MODELS

from mmadamtl.models.backbones import Control
from mmadamtl.models.utils import counted_flops, swin_cost

TASK_NAMES = ['semseg', 'human_parts', 'saliency', 'normals', 'edge',
              'depth']
SWIN = dict(pretrain_img_size=64, embed_dims=32, depths=[2, 2, 2, 2],
            num_heads=[1, 2, 4, 8], window_size=4)


def _swin(policy=None, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(type='AdaptiveSwinTransformer', **SWIN, **kw)
    if policy is not None:
        cfg['policy'] = dict(type='PolicyHead', **policy)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _shuffle_policy(model, scale=1.0):
    """Random selector weights and zero biases, so that decisions differ
    from image to image."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.policy.named_parameters():
            if name.endswith('out.bias'):
                p.zero_()
            else:
                p.copy_(torch.randn(p.shape, generator=g) * scale /
                        max(1, p.shape[-1])**0.5)


def test_policy_off_equals_mmseg_swin():
    ref = MODELS.build(dict(type='SwinTransformer', **SWIN))
    ref.init_weights()
    ada = _swin(policy=dict())
    # Same Swin keys; the policy's live under "policy.".
    swin_keys = {k for k in ada.state_dict() if not k.startswith('policy.')}
    assert swin_keys == set(ref.state_dict())
    ada.load_state_dict(ref.state_dict(), strict=False)
    plain = _swin(policy=None)
    plain.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 64, 96)
    ref.eval(), ada.eval(), plain.eval()
    with torch.no_grad():
        outs = [m(x) for m in (ref, ada, plain)]
    for a, b, c in zip(*outs):
        assert torch.equal(a, b) and torch.equal(a, c)
    # budget=None runs every block: the static figure.
    _, stats_ = ada.encode(x)
    assert torch.all(stats_.encoder_flops ==
                     swin_cost(ref, (64, 96)).total)


@pytest.mark.parametrize('hw', [(64, 64), (64, 96), (70, 50)])
def test_closed_form_flops_match_mmengine_counter(hw):
    ref = MODELS.build(dict(type='SwinTransformer', **SWIN))
    ref.eval()  # mmseg's SwinTransformer.train() returns None
    counted = counted_flops(ref, torch.randn(1, 3, *hw))
    assert swin_cost(ref, hw).total == pytest.approx(counted, rel=1e-6)


def test_policy_flops_match_counter():
    """The policy's share of an executed forward, counted by hand, equals
    mmengine's count of every selector run on inputs of its stage's size,
    and the rest equals the counter's count of the Swin."""
    ada = _swin(policy=dict(task_mode='per_task', tasks=TASK_NAMES)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        _, stats = ada.encode(x, Control(budget=1.0, budget_mode='input'))
    assert torch.all(stats.blocks == 1)
    cost = ada.cost((64, 64))

    class Selectors(torch.nn.Module):
        """Runs every selector once, as a forward with every block does."""

        def __init__(self, policy):
            super().__init__()
            self.policy = policy

        def forward(self, budget):
            outs = []
            for i, sc in enumerate(cost.stages):
                tokens = torch.ones(1, sc.blocks[0].tokens,
                                    self.policy.embed_dims[i])
                outs.append(self.policy.block_selectors[i](
                    tokens, sc.hw, budget).sum())
                for sel in self.policy.token_selectors[i]:
                    outs.append(sel(tokens, budget).sum())
            return torch.stack(outs)

    policy = counted_flops(Selectors(ada.policy), torch.ones(1))
    assert float(stats.policy_flops[0]) == pytest.approx(policy, rel=0.02)
    swin = counted_flops(_swin(), x)
    assert float(stats.encoder_flops[0] - stats.policy_flops[0]) == \
        pytest.approx(swin, rel=1e-6)


def test_batched_skipping_equals_one_image_at_a_time():
    ada = _swin(policy=dict(task_mode='per_task', tasks=TASK_NAMES))
    _shuffle_policy(ada, scale=3.0)
    ada.eval()
    x = torch.randn(4, 3, 64, 64)
    budget = torch.tensor([0.3, 0.5, 0.8, 1.0])
    tasks = ['semseg', 'depth']
    with torch.no_grad():
        outs, batched = ada.encode(
            x, Control(budget=budget, tasks=tasks, budget_mode='input'))
        singles = []
        for i in range(4):
            o, stats_ = ada.encode(
                x[i:i + 1], Control(budget=budget[i:i + 1], tasks=tasks,
                                    budget_mode='input'))
            singles.append((o, stats_))
    # Decisions really differ between images, and some work is skipped.
    assert len({tuple(b) for b in batched.blocks.tolist()}) > 1 or len(
        set(batched.encoder_flops.tolist())) > 1
    assert batched.encoder_flops.max() < batched.static_flops
    for i, (o, s) in enumerate(singles):
        for a, b in zip(outs, o):
            torch.testing.assert_close(a[i:i + 1], b, atol=1e-5, rtol=1e-4)
        assert torch.equal(batched.blocks[i], s.blocks[0])
        assert float(batched.encoder_flops[i]) == pytest.approx(
            float(s.encoder_flops[0]), rel=1e-6)


def test_skipped_work_is_not_computed():
    """Count what the blocks' attention and MLP really see."""
    ada = _swin(policy=dict()).eval()
    seen = {}

    def hook(name):
        def fn(module, args, out):
            seen.setdefault(name, []).append(args[0].shape[:-1].numel())
        return fn

    for i, stage in enumerate(ada.stages):
        for j, block in enumerate(stage.blocks):
            block.attn.register_forward_hook(hook(f'attn{i}{j}'))
            block.ffn.layers.register_forward_hook(hook(f'mlp{i}{j}'))
    batch = 3
    # Stage 0: block 0 runs for image 0 only, block 1 for nobody.
    keep = {0: torch.tensor([[1., 0.], [0., 0.], [0., 0.]])}
    # Tokens: the first 5 tokens of every block.
    length = {0: 256, 1: 64, 2: 16, 3: 4}

    def block_decisions(stage, x, hw, budget, index):
        return keep.get(stage, x.new_ones(x.shape[0], 2))

    def token_decisions(stage, block, x, budget, index):
        t = x.new_zeros(x.shape[:2])
        t[:, :5] = 1
        return t

    ada.policy.block_decisions = block_decisions
    ada.policy.token_decisions = token_decisions
    with torch.no_grad():
        _, stats_ = ada.encode(
            torch.randn(batch, 3, 64, 64), Control(budget=0.5,
                                                   budget_mode='input'))
    assert seen['attn00'] == [1 * length[0]]
    assert 'attn01' not in seen and 'mlp01' not in seen
    assert seen['mlp00'] == [5]
    for i in (1, 2, 3):
        for j in (0, 1):
            assert seen[f'attn{i}{j}'] == [batch * length[i]]
            assert seen[f'mlp{i}{j}'] == [batch * min(5, length[i])]
    stats = stats_
    cost = swin_cost(ada, (64, 64))
    skipped = cost.stages[0].blocks[0].mlp_per_token * (256 - 5) + \
        cost.stages[0].blocks[1].full
    assert float(stats.encoder_flops[0] - stats.policy_flops[0]) == \
        pytest.approx(cost.total - skipped -
                      sum(b.mlp_per_token * max(0, b.tokens - 5)
                          for s in cost.stages[1:] for b in s.blocks))
    assert stats.block_keep[0].tolist() == [0.5, 1, 1, 1]
    assert stats.block_keep[1].tolist() == [0.0, 1, 1, 1]


def test_straight_through_gradients_reach_the_policy():
    ada = _swin(policy=dict(task_mode='per_task', tasks=TASK_NAMES)).train()
    x = torch.randn(2, 3, 64, 64)
    budget = torch.tensor([0.3, 0.7])
    outs, stats = ada.encode(
        x, Control(budget=budget, tasks=TASK_NAMES[:2], budget_mode='input'))
    # Hard decisions in the forward pass.
    assert set(stats.blocks.unique().tolist()) <= {0., 1.}
    loss = ((stats.block_fraction - budget)**2).mean() + sum(
        o.mean() for o in outs)
    loss.backward()
    for name, p in ada.policy.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert ada.stages[0].blocks[0].ffn.layers[0][0].weight.grad is not None


def test_per_task_union_covers_only_requested_tasks():
    ada = _swin(policy=dict(task_mode='per_task', tasks=TASK_NAMES))
    _shuffle_policy(ada, scale=3.0)
    ada.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        _, one = ada.encode(
            x, Control(budget=0.5, tasks=['semseg'], budget_mode='input'))
        _, union = ada.encode(
            x, Control(budget=0.5, tasks=TASK_NAMES, budget_mode='input'))
    assert torch.all(one.blocks <= union.blocks)
    assert torch.all(one.encoder_flops <= union.encoder_flops)
    assert torch.any(one.encoder_flops < union.encoder_flops)
    with pytest.raises(ValueError, match='surface'):
        _, stats_ = ada.encode(
            x, Control(budget=0.5, tasks=['surface'], budget_mode='input'))


def test_budget_conditioning_is_monotonic_after_training():
    """Train only the policy of a tiny model with the budget loss on a
    range of budgets; executed GFLOPs then rise with the budget."""
    ada = _swin(policy=dict(token_hidden=8, block_hidden=8))
    loss_fn = MODELS.build(dict(type='BudgetLoss'))
    opt = torch.optim.Adam(ada.policy.parameters(), lr=2e-2)
    g = torch.Generator().manual_seed(0)
    ada.train()
    for _ in range(60):
        x = torch.randn(4, 3, 64, 64, generator=g)
        budget = 0.2 + 0.8 * torch.rand(4, generator=g)
        _, stats_ = ada.encode(x, Control(budget=budget, budget_mode='input'))
        loss = loss_fn(stats_, budget)
        opt.zero_grad()
        loss.backward()
        opt.step()
    ada.eval()
    x = torch.randn(4, 3, 64, 64, generator=g)
    flops = []
    with torch.no_grad():
        for b in (0.2, 0.4, 0.6, 0.8, 1.0):
            _, stats_ = ada.encode(x, Control(budget=b, budget_mode='input'))
            flops.append(float(stats_.encoder_flops.mean()))
    assert all(a <= b for a, b in zip(flops, flops[1:])), flops
    assert flops[0] < 0.8 * flops[-1], flops


@pytest.mark.parametrize('bad', [0, 0.0, -0.5, 1.5, float('nan'), 'half',
                                 True])
def test_bad_budget_is_rejected(bad):
    ada = _swin(policy=dict()).eval()
    with pytest.raises(ValueError, match='budget'):
        _, stats_ = ada.encode(
            torch.randn(1, 3, 64, 64), Control(budget=bad,
                                               budget_mode='input'))


def test_bad_budget_tensor_names_values():
    ada = _swin(policy=dict()).eval()
    with pytest.raises(ValueError, match=r'\[1\.5\]'):
        _, stats_ = ada.encode(
            torch.randn(2, 3, 64, 64), Control(
                                               budget=torch.tensor([0.5, 1.5]),
                                               budget_mode='input'))


def test_policy_head_config_errors():
    with pytest.raises(ValueError, match='task_mode'):
        _swin(policy=dict(task_mode='each'))
    with pytest.raises(ValueError, match='tasks'):
        _swin(policy=dict(task_mode='per_task'))
    with pytest.raises(ValueError, match="unknown task 'surface'"):
        _swin(policy=dict(task_mode='per_task', tasks=['surface']))


def test_budget_loss_values():
    from types import SimpleNamespace
    stats = SimpleNamespace(block_fraction=torch.tensor([0.5, 0.9]),
                            token_fraction=torch.tensor([0.4, 1.0]))
    budgets = torch.tensor([0.3, 0.9])
    loss = MODELS.build(dict(type='BudgetLoss', loss_weight=2.0,
                             token_weight=0.5))(stats, budgets)
    expected = 2.0 * ((0.2**2 + 0) / 2 + 0.5 * (0.1**2 + 0.1**2) / 2)
    assert float(loss) == pytest.approx(expected)
    fixed = MODELS.build(dict(type='BudgetLoss', token_weight=1.0,
                              token_target=0.5))(stats, budgets)
    assert float(fixed) == pytest.approx(0.02 + (0.01 + 0.25) / 2)
    keep = MODELS.build(dict(type='BudgetLoss', keep_all=True))(stats,
                                                                budgets)
    assert float(keep) == pytest.approx((0.5 + 0.1) / 2 + (0.6 + 0) / 2)
    with pytest.raises(ValueError, match='token_target'):
        MODELS.build(dict(type='BudgetLoss', token_target=2.0))


def test_skipping_under_cpu_autocast_matches_float32():
    """bfloat16 autocast (benchmark --amp): the skipping path runs, makes
    the float32 decisions where the logits are not borderline, and its
    features stay close to float32's."""
    ada = _swin(policy=dict(task_mode='single'))
    _shuffle_policy(ada, scale=3.0)
    ada.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref, ref_stats = ada.encode(
            x, Control(budget=0.5, budget_mode='input'))
        with torch.autocast('cpu', dtype=torch.bfloat16):
            outs, stats = ada.encode(
                x, Control(budget=0.5, budget_mode='input'))
    assert ref_stats.encoder_flops.max() < ref_stats.static_flops
    assert (stats.blocks == ref_stats.blocks).float().mean() > 0.8
    for a, b in zip(outs, ref):
        assert a.shape == b.shape and torch.isfinite(a).all()
    if torch.equal(stats.blocks, ref_stats.blocks):
        cos = torch.nn.functional.cosine_similarity(
            outs[0].float().flatten(1), ref[0].flatten(1))
        assert (cos > 0.9).all()


def test_shared_token_selectors_one_per_stage():
    """``shared_token_selectors``: one selector per stage (half the
    selector weights of two-block stages), deciding before each of its
    blocks, trained through every block it decides for."""
    shared = _swin(policy=dict(shared_token_selectors=True))
    per_block = _swin(policy=dict())
    assert [len(s) for s in shared.policy.token_selectors] == [1] * 4
    assert [len(s) for s in per_block.policy.token_selectors] == [2] * 4

    def count(m):
        return sum(p.numel() for p in m.policy.token_selectors.parameters())

    assert count(per_block) == 2 * count(shared)
    x = torch.randn(2, 3, 64, 64)
    shared.eval()
    with torch.no_grad():
        shared.policy.token_selectors[2][0].out.bias.fill_(-1e4)
        _, stats = shared.encode(x, Control(budget=1.0,
                                            budget_mode='input'))
    assert torch.all(stats.token_keep[:, 2] == 0)
    assert torch.all(stats.token_keep[:, [0, 1, 3]] > 0)
    # Its cost is a selector's before every block, as one per block.
    with torch.no_grad():
        shared.policy.token_selectors[2][0].out.bias.fill_(3.)
        _, s_stats = shared.encode(x, Control(budget=1.0,
                                              budget_mode='input'))
        _, p_stats = per_block.eval().encode(
            x, Control(budget=1.0, budget_mode='input'))
    assert torch.all(s_stats.blocks == 1) and torch.all(p_stats.blocks == 1)
    assert torch.equal(s_stats.policy_flops, p_stats.policy_flops)
    shared.train()
    _, stats = shared.encode(x, Control(budget=0.5, budget_mode='input'))
    (stats.token_fraction.sum() + stats.block_fraction.sum()).backward()
    assert all(s[0].out.weight.grad is not None and
               s[0].out.weight.grad.abs().sum() > 0
               for s in shared.policy.token_selectors)
