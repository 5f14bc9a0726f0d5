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


def test_graph_target_budget_interpolates_in_the_graph():
    """budget_mode='target' with a tensor request: the curve inverted by
    tensor operations equals the float request's host path."""
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


def test_precomputed_mask_attention_equals_mmseg():
    ada = _swin(policy=None).eval()
    x = torch.randn(2, 16 * 12, 32)
    for block in ada.stages[0].blocks:
        mask = shift_mask(block.attn, (16, 12))
        assert (mask is None) == (block.attn.shift_size == 0)
        with torch.no_grad():
            assert torch.equal(
                attention_residual(block, x, (16, 12), mask),
                attention_residual(block, x, (16, 12)))


def test_graph_refuses_what_it_cannot_run():
    ada = _policy_swin()
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match="budget_mode='cap' cannot run"):
        ada.encode(x, Control(budget=0.6, budget_mode='cap', graph=True))
    ada.set_random_policy(0.5)
    with pytest.raises(ValueError, match='random policy cannot run'):
        ada.encode(x, Control(budget=0.5, budget_mode='input', graph=True))
