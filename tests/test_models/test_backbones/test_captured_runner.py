"""AdaMTL's captured mode (``Control.captured``, ``CapturedRunner``):
token counts padded to buckets, the patch embedding, blocks, token
selectors and stage ends compiled with ``compile_static`` (inductor, CPU)
once per shape; outputs equal eager skipping, and the graphs compiled stay
within ``CapturedPieces.bound``."""
import pytest
import torch
from torch._inductor.compile_fx import compile_fx

from mmadamtl.models.backbones import Control
from mmadamtl.models.layers.adamtl_runners import (bucket_size,
                                                   check_buckets)
from mmadamtl.models.utils import compile_static
from tests.test_models.test_backbones.test_adaptive_swin import (
    TASK_NAMES, _shuffle_policy, _swin)


def test_bucket_size_is_the_smallest_bucket_that_holds_the_count():
    buckets = check_buckets((1.0, 0.25, 0.5))
    assert buckets == (0.25, 0.5, 1.0)
    assert bucket_size(0, 10, buckets) == 3
    assert bucket_size(3, 10, buckets) == 3
    assert bucket_size(4, 10, buckets) == 5
    assert bucket_size(6, 10, buckets) == 10
    for bad in [(), (0.5, ), (0., 1.), (0.5, 1.5)]:
        with pytest.raises(ValueError, match='token buckets'):
            check_buckets(bad)


def encode_eager_and_captured(encoder, x, control):
    """``encoder`` on ``x`` under ``control``, eagerly and captured: the
    features equal within 1e-4 and the same block decisions; returns the
    captured and the eager stats."""
    with torch.no_grad():
        ref, ref_stats = encoder.encode(x, control)
        got, stats = encoder.encode(x, control.replace(captured=True))
    for a, c in zip(ref, got):
        torch.testing.assert_close(c, a, atol=1e-4, rtol=1e-4)
    assert torch.equal(stats.blocks, ref_stats.blocks)
    return stats, ref_stats


def test_captured_equals_skipping_within_the_graph_bound():
    torch.manual_seed(0)
    ada = _swin(policy=dict(task_mode='per_task', tasks=TASK_NAMES),
                token_buckets=(0.5, 1.0))
    _shuffle_policy(ada, scale=3.0)
    ada.eval()
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return compile_fx(gm, example_inputs)

    ada.captured_compiler = lambda fn: compile_static(fn, backend=backend)
    x = torch.randn(1, 3, 64, 64)
    tasks = ('semseg', 'depth')
    ran = set()
    for b in (0.2, 0.9):
        control = Control(budget=torch.tensor([b]), budget_mode='input',
                          tasks=tasks)
        # The same outputs, decisions and nominal figures as eager
        # skipping.
        stats, ref_stats = encode_eager_and_captured(ada, x, control)
        torch.testing.assert_close(stats.encoder_flops,
                                   ref_stats.encoder_flops)
        # What really ran counts the padding: never below the nominal.
        assert stats.run_flops.dtype == torch.float32
        assert (stats.run_flops >= stats.encoder_flops).all()
        ran.add(tuple(ref_stats.blocks[0].tolist()))
    # The two budgets ran different blocks, and some work was skipped.
    assert len(ran) == 2 and ref_stats.block_fraction.min() < 1
    blocks = sum(len(s.blocks) for s in ada.stages)
    pieces = ada.captured_pieces(ada.policy.task_index(tasks), x)
    assert 0 < len(graphs) <= pieces.bound(blocks, len(ada.stages), 1)
    # Both kinds of block pieces ran: alone, and with the next block's
    # token selector in its graph.
    kinds = {name for name, _, _ in pieces._fns}
    assert {'_captured_block', '_captured_block_tokens',
            '_captured_embed', '_captured_leave'} <= kinds
    # A repeated forward compiles nothing new.
    count = len(graphs)
    with torch.no_grad():
        ada.encode(x, control.replace(captured=True))
    assert len(graphs) == count


def test_captured_refuses_graph_cap_and_random_policy():
    ada = _swin(policy=dict(task_mode='per_task', tasks=TASK_NAMES)).eval()
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match='Control.captured'):
        ada.encode(x, Control(budget=0.5, graph=True, captured=True))
    # Its padding would run more than a cap allows.
    with pytest.raises(ValueError, match='cannot hold a cap'):
        ada.encode(x, Control(budget=0.5, budget_mode='cap',
                              captured=True))
    ada.set_random_policy(0.5)
    with pytest.raises(ValueError, match='random policy cannot run '
                       'captured'):
        ada.encode(x, Control(budget=0.5, budget_mode='input',
                              captured=True))
