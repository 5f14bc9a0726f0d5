"""AdaMTL inference as one graph (``Control.graph``, ``CondRunner``): the
same decisions, outputs and executed figures as ``SkipRunner``, in a
graph that exports (ONNX Runtime against eager skipping:
tests/test_apis/test_deploy.py)."""
import pytest
import torch

from mmadamtl.models.backbones import Control
from mmadamtl.models.layers import attention_residual, shift_mask
from tests.test_models.test_backbones.test_adaptive_swin import (
    TASK_NAMES, _shuffle_policy, _swin)


def _policy_swin(**policy):
    ada = _swin(policy=dict(task_mode='per_task', tasks=TASK_NAMES,
                            **policy))
    _shuffle_policy(ada, scale=3.0)
    return ada.eval()


@pytest.mark.parametrize('policy', [dict(), dict(token_select=False),
                                    dict(block_select=False)])
def test_graph_runs_what_skipping_runs(policy):
    ada = _policy_swin(**policy)
    x = torch.randn(3, 3, 64, 64)
    budget = torch.tensor([0.2, 0.5, 0.9])
    tasks = ('semseg', 'depth')
    with torch.no_grad():
        ref, ref_stats = ada.encode(
            x, Control(budget=budget, tasks=tasks, budget_mode='input'))
        got, stats = ada.encode(
            x, Control(budget=budget, tasks=tasks, budget_mode='input',
                       graph=True))
    # Decisions differ between images and some work is skipped, so the
    # comparison covers both branches.
    assert len({tuple(b) for b in ref_stats.blocks.tolist()}) > 1 or \
        len(set(ref_stats.token_fraction.tolist())) > 1
    assert ref_stats.block_fraction.min() < 1
    for a, b in zip(ref, got):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
    assert torch.equal(stats.blocks, ref_stats.blocks)
    for field in ('encoder_flops', 'policy_flops', 'block_fraction',
                  'token_fraction', 'block_keep', 'token_keep'):
        torch.testing.assert_close(getattr(stats, field),
                                   getattr(ref_stats, field))
    for a, b in zip(stats.token_maps, ref_stats.token_maps):
        torch.testing.assert_close(a, b)
    # Cost accounting stays float32.
    assert stats.encoder_flops.dtype == torch.float32


def test_graph_skips_a_kept_block_without_selected_tokens():
    """A block the policy keeps whose token selector selects nothing is
    skipped whole, attention included, in both runners."""
    ada = _policy_swin()
    with torch.no_grad():
        # Stage 2 keeps both its blocks; block 1 selects no token.
        ada.policy.block_selectors[2].out.bias.fill_(1e4)
        ada.policy.token_selectors[2][0].out.bias.fill_(1e4)
        ada.policy.token_selectors[2][1].out.bias.fill_(-1e4)
    x = torch.randn(2, 3, 64, 64)
    control = Control(budget=1.0, budget_mode='input')
    with torch.no_grad():
        ref, ref_stats = ada.encode(x, control)
        got, stats = ada.encode(x, control.replace(graph=True))
    block = sum(ada.policy.depths[:2]) + 1     # stage 2, block 1
    assert torch.equal(stats.blocks[:, block - 1], torch.ones(2))
    assert torch.equal(stats.blocks[:, block], torch.zeros(2))
    assert torch.equal(stats.blocks, ref_stats.blocks)
    for a, b in zip(ref, got):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


def test_graph_target_budget_interpolates_in_the_graph():
    """budget_mode='target' with a tensor request in graph mode runs what
    the float request runs eagerly (the cached host path)."""
    ada = _policy_swin()
    grid = torch.linspace(0.02, 1.0, 50, dtype=torch.float64)
    ada.policy.budget_curve.copy_(0.1 + 0.8 * grid)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref, ref_stats = ada.encode(x, Control(budget=0.45))
        got, stats = ada.encode(x, Control(budget=torch.tensor([0.45]),
                                           graph=True))
    for a, b in zip(ref, got):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
    assert torch.equal(stats.blocks, ref_stats.blocks)


@pytest.mark.parametrize('hw', [(16, 12), (18, 13)])   # (18, 13): padded
def test_precomputed_mask_attention_equals_mmseg(hw):
    ada = _swin(policy=None).eval()
    x = torch.randn(2, hw[0] * hw[1], 32)
    for block in ada.stages[0].blocks:
        mask = shift_mask(block.attn, hw)
        assert (mask is None) == (block.attn.shift_size == 0)
        with torch.no_grad():
            assert torch.equal(attention_residual(block, x, hw, mask),
                               attention_residual(block, x, hw))


def test_graph_refuses_what_it_cannot_run():
    ada = _policy_swin()
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match="budget_mode='cap' cannot run"):
        ada.encode(x, Control(budget=0.6, budget_mode='cap', graph=True))
    ada.set_random_policy(0.5)
    with pytest.raises(ValueError, match='random policy cannot run'):
        ada.encode(x, Control(budget=0.5, budget_mode='input', graph=True))
