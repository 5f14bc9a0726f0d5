"""The adaptive inference path's overhead: how often it reads the device
on the host, and that its bookkeeping leaves the outputs unchanged."""
import functools

import pytest
import torch

from mmadamtl.models.backbones import Control
from mmadamtl.models.layers import (PolicyRunner, attention_residual,
                                    mlp_delta)
from mmadamtl.models.layers.profiling import (RecordingSkipRunner,
                                              ReplayRunner)
from mmadamtl.utils.host_sync import SyncCounter

from tests.test_models.test_backbones.test_adaptive_swin import (
    TASK_NAMES, _shuffle_policy, _swin)


def test_sync_counter_counts_host_reads():
    x = torch.randn(6)
    with SyncCounter() as syncs:
        x.nonzero()
        bool(x.sum() > 0)
        x.tolist()
        x[x > 0]
        y = x.clone()
        y[x > 0] = 0
        x.cpu()
    assert syncs.by_name == {
        'aten.nonzero': 1, 'aten._local_scalar_dense': 1,
        'Tensor.tolist': 1, 'aten.index (boolean mask)': 1,
        'aten.index_put_ (boolean mask)': 1, 'Tensor.cpu': 1}
    # Known shapes read nothing.
    with SyncCounter() as syncs:
        torch.nonzero_static(x, size=3)
        x.index_select(0, torch.tensor([1, 2]))
        x[torch.tensor([0, 3])]
        x.numel()
        (x + 1).sum(0)
    assert syncs.count == 0
    # The methods are restored.
    assert 'tolist' not in torch.Tensor.__dict__


class _PlanRecorder:
    """Wraps a policy's block decisions to record every stage's plan."""

    def __init__(self, policy):
        self.plans = []
        self.decide = policy.block_decisions
        policy.block_decisions = self

    def __call__(self, *args, **kwargs):
        plan = self.decide(*args, **kwargs)
        self.plans.append(plan.clone())
        return plan


@pytest.mark.parametrize('batch,per_image',
                         [(1, False), (3, False), (3, True)])
@pytest.mark.parametrize('token_select', [True, False])
def test_adaptive_forward_reads_the_host_once_per_stage_and_block(
        batch, per_image, token_select):
    """The documented bound (``SkipRunner``): one host read per stage (its
    block plan), one per block that some image plans to run (its token
    counts, with token selection), one for the figures after the forward,
    and one for the range check of budgets given as a tensor; no other
    data-dependent operation."""
    ada = _swin(policy=dict(task_mode='per_task', tasks=TASK_NAMES,
                            token_select=token_select))
    _shuffle_policy(ada, scale=3.0)
    ada.eval()
    recorder = _PlanRecorder(ada.policy)
    x = torch.randn(batch, 3, 64, 64)
    budget = torch.linspace(0.3, 0.9, batch) if per_image else 0.6
    with torch.no_grad(), SyncCounter() as syncs:
        _, stats = ada.encode(
            x, Control(budget=budget, tasks=['semseg', 'depth'],
                       budget_mode='input'))
    stages = len(ada.stages)
    planned = sum(int((p.sum(0) > 0).sum()) for p in recorder.plans)
    # Some blocks run and some are skipped: the count is not trivial.
    assert 0 < float(stats.blocks.mean()) < 1 and planned > 0
    expected = stages + 1 + (planned if token_select else 0) + per_image
    assert syncs.count == expected, syncs.by_name
    assert set(syncs.by_name) <= {'Tensor.tolist', 'Tensor.cpu',
                                  'aten._local_scalar_dense'}
    # The figures are host tensors: reading them reads nothing more.
    with SyncCounter() as syncs:
        stats.encoder_flops.sum()
    assert syncs.count == 0 and stats.encoder_flops.device.type == 'cpu'


def test_no_planned_block_reads_only_the_plans():
    ada = _swin(policy=dict())
    with torch.no_grad():
        for sel in ada.policy.block_selectors:
            sel.out.bias.fill_(-100.)
    ada.eval()
    with torch.no_grad(), SyncCounter() as syncs:
        _, stats_ = ada.encode(
            torch.randn(2, 3, 64, 64), Control(budget=0.5,
                                               budget_mode='input'))
    assert float(stats_.blocks.sum()) == 0
    assert syncs.by_name == {'Tensor.tolist': len(ada.stages),
                             'Tensor.cpu': 1}


class _ReferenceSkipRunner(PolicyRunner):
    """The inference path as it was before the overhead was cut, kept as
    the reference: per block, the keeping images by ``nonzero``, token
    decisions, a check that each selected some token, the selected rows
    by ``nonzero`` and the MLP added back with ``index_add_``; the
    executed decisions recorded as (B, L) tensors."""

    def __init__(self, policy, budget, index):
        super().__init__(policy, budget, index)
        self.keeps, self.tokens = [], []

    def start_stage(self, stage, x, hw_shape):
        self._planned = self.policy.block_decisions(stage, x, hw_shape,
                                                    self.budget, self.index)
        self._keep, self._tokens = [], []

    def run_block(self, stage, index, block, x, hw_shape):
        batch, length, _ = x.shape
        tokens = x.new_zeros(batch, length)
        executed = x.new_zeros(batch)
        idx = self._planned[:, index].nonzero().squeeze(1)
        if idx.numel():
            sub = x[idx]
            selected = self.policy.token_decisions(
                stage, index, sub, self.budget[idx], self.index)
            if selected is None:
                selected = sub.new_ones(sub.shape[:2])
            ran = selected.any(dim=1)
            idx, sub, selected = idx[ran], sub[ran], selected[ran]
        if idx.numel():
            executed[idx] = 1
            tokens[idx] = selected
            y = attention_residual(block, sub, hw_shape)
            flat = y.reshape(-1, y.shape[-1])
            rows = selected.reshape(-1).nonzero().squeeze(1)
            flat.index_add_(0, rows, mlp_delta(block, flat[rows]))
            x = x.clone()
            x[idx] = flat.view_as(y)
        self._keep.append(executed)
        self._tokens.append(tokens)
        self.tokens.append(tokens)
        return x

    def end_stage(self, stage, x, hw_shape):
        self.keeps.append(torch.stack(self._keep, 1))
        maps = torch.stack(self._tokens).float().mean(0)
        self.token_maps.append(maps.view(x.shape[0], *hw_shape))

    def executed(self):
        return (torch.cat(self.keeps, 1),
                torch.stack([t.sum(1) for t in self.tokens], 1),
                self.token_maps)


@pytest.mark.parametrize('batch', [1, 5])
@pytest.mark.parametrize('token_select', [True, False])
def test_skip_runner_is_bit_equal_to_the_reference(batch, token_select):
    ada = _swin(policy=dict(task_mode='per_task', tasks=TASK_NAMES,
                            token_select=token_select))
    _shuffle_policy(ada, scale=3.0)
    ada.eval()
    x = torch.randn(batch, 3, 64, 96)
    budget = torch.linspace(0.2, 1.0, batch)
    tasks = ['semseg', 'normals', 'edge']
    with torch.no_grad():
        outs, stats = ada.encode(
            x, Control(budget=budget, tasks=tasks, budget_mode='input'))
        runner = _ReferenceSkipRunner(ada.policy, budget,
                                      ada.policy.task_index(tasks))
        ref = ada.run_stages(x, runner)
        ref_stats = ada._executed_stats(runner, ada.cost((64, 96)),
                                        (64, 96))
    assert 0 < float(stats.blocks.mean()) < 1
    for a, b in zip(outs, ref):
        assert torch.equal(a, b)
    assert torch.equal(stats.blocks, ref_stats.blocks)
    assert torch.equal(stats.encoder_flops, ref_stats.encoder_flops)
    assert torch.equal(stats.token_keep, ref_stats.token_keep)
    for a, b in zip(stats.token_maps, ref_stats.token_maps):
        assert torch.equal(a, b)


def test_budget_terms_are_reused_while_budget_and_weights_stay():
    """A budget given as a number: the policy's budget terms computed once
    and reused, with the same outputs as a budget tensor (which computes
    its own); another budget or an in-place change of the weights (an
    optimizer step, a checkpoint load) computes them again."""
    ada = _swin(policy=dict(task_mode='per_task', tasks=TASK_NAMES))
    _shuffle_policy(ada, scale=3.0)
    ada.eval()
    x = torch.randn(2, 3, 64, 96)
    policy = ada.policy

    def run(budget):
        outs, stats_ = ada.encode(
            x, Control(budget=budget, budget_mode='input'))
        return outs, stats_.blocks

    with torch.no_grad():
        first, blocks = run(0.3)
        cached = policy._terms_cache
        assert cached is not None
        again, _ = run(0.3)
        assert policy._terms_cache is cached
        fresh, fresh_blocks = run(torch.full((2, ), 0.3))
        for a, b, c in zip(first, again, fresh):
            assert torch.equal(a, b) and torch.equal(a, c)
        assert torch.equal(blocks, fresh_blocks)
        assert 0 < float(blocks.mean())

        run(0.3)
        cached = policy._terms_cache
        run(0.7)
        assert policy._terms_cache is not cached

        run(0.3)
        # At budget 0.3 (feature -0.8) this skips every block.
        for sel in policy.block_selectors:
            sel.budget_out.weight.fill_(100.)
        changed, changed_blocks = run(0.3)
        assert float(changed_blocks.sum()) == 0
        ref, _ = run(torch.full((2, ), 0.3))
        for a, b in zip(changed, ref):
            assert torch.equal(a, b)


@pytest.mark.parametrize('batch', [1, 4])
def test_replay_runs_exactly_the_adaptive_work(batch):
    """``tools/encoder_breakdown.py --floor``'s replay (the recorded work,
    without policy or reads, ``ReplayRunner``) gives the adaptive outputs
    bit for bit, with image sub-batches and MLP rows where the decisions
    made them."""
    ada = _swin(policy=dict(task_mode='per_task', tasks=TASK_NAMES))
    _shuffle_policy(ada, scale=3.0)
    ada.eval()
    x = torch.randn(batch, 3, 64, 96)
    budget = torch.linspace(0.3, 0.9, batch)
    plan = []
    with torch.no_grad():
        outs, stats = ada.encode(
            x, Control(budget=budget, tasks=['semseg'], budget_mode='input'),
            skip_runner=functools.partial(RecordingSkipRunner, plan=plan))
        keep = stats.blocks
        replay = ada.run_stages(x.clone(), ReplayRunner(plan))
    for a, b in zip(outs, replay):
        assert torch.equal(a, b)
    # One entry per block, None exactly where no image ran it.
    assert len(plan) == keep.shape[1]
    for k, entry in enumerate(plan):
        ran = keep[:, k].nonzero().squeeze(1).tolist()
        assert (entry is None) == (not ran)
        if entry is not None and batch > 1:
            images = entry[0]
            assert (images is None and len(ran) == batch) or \
                images.tolist() == ran
    assert any(e is not None and e[1] is not None for e in plan)
    if batch > 1:
        assert any(e is not None and e[0] is not None for e in plan)
