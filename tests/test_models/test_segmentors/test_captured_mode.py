"""The segmentor's captured mode (``test_cfg.captured``,
``runtime(captured=True)``): the encoder's captured runner and the heads
compiled; outputs equal eager inference, and the GFLOPs it reports count
the bucket padding (checked against the decisions and the MLPs' weights).
The compiler is dynamo with the ``eager`` backend here (fast);
tests/test_models/test_backbones/test_captured_runner.py runs inductor."""
import math

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmseg.registry import MODELS

import mmadamtl.models.segmentors.multi_task_encoder_decoder as segmentor
from mmadamtl.models.backbones import Control
from mmadamtl.models.utils import (CapturedLimitError, compile_static,
                                   compiled_copy)
from tests.conftest import ROOT
from tests.test_models.test_backbones.test_captured_runner import \
    encode_eager_and_captured
from tests.test_models.test_backbones.test_adaptive_swin import \
    _shuffle_policy
from tests.test_models.test_segmentors.test_multi_task_encoder_decoder \
    import _sample


def _compile(fn):
    return compile_static(fn, backend='eager')


@pytest.fixture
def model():
    cfg = Config.fromfile(
        f'{ROOT}/tests/configs/tiny_adamtl_swin_synthetic.py').model
    cfg.test_cfg = dict(budget=0.4, budget_mode='input')
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    _shuffle_policy(model.backbone, scale=3.0)
    model.backbone.captured_compiler = _compile
    model._compiled_heads = compiled_copy(segmentor._heads, _compile)
    return model.eval()


def _padding_flops(model, stats, hw) -> float:
    """Multiply-adds of the padding rows of image 0: per executed block,
    the smallest bucket holding its selected tokens less those tokens,
    times the multiply-adds per token of norm2 and the MLP (from the
    layers' shapes)."""
    total, k = 0., 0
    for s, stage in enumerate(model.backbone.stages):
        tokens = (hw[0] // 4 >> s) * (hw[1] // 4 >> s)
        for block in stage.blocks:
            if stats.blocks[0, k] > 0:
                count = round(float(stats.token_shares[0, k]) * tokens)
                size = min(math.ceil(f * tokens)
                           for f in model.backbone.token_buckets
                           if math.ceil(f * tokens) >= count)
                # norm2 (mmengine's LayerNorm: 5 per element) and the
                # linear layers.
                per_token = 5 * block.norm2.normalized_shape[0] + sum(
                    m.weight.numel() for m in block.ffn.modules()
                    if isinstance(m, nn.Linear))
                total += (size - count) * per_token
            k += 1
    return total


def test_captured_equals_eager_and_counts_the_padding(model):
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref, _, ref_stats = model._decode(x)
        with model.runtime(captured=True) as m:
            assert m.control().captured
            got, _, stats = model._decode(x)
            meta = model.predict(x, [_sample(64, 64)])[0].metainfo
    assert model.captured is False  # runtime() restored it
    assert set(got) == set(ref) == set(model.tasks)
    for task in ref:
        torch.testing.assert_close(got[task], ref[task], atol=1e-4,
                                   rtol=1e-4)
    # The same decisions; something was skipped and something padded.
    assert torch.equal(stats.blocks, ref_stats.blocks)
    assert 0 < stats.block_fraction[0] < 1
    padding = _padding_flops(model, stats, (64, 64))
    assert padding > 0
    assert float(stats.run_flops[0] - stats.encoder_flops[0]) == \
        pytest.approx(padding, rel=1e-5)
    # predict reports both: the nominal figure and what ran.
    assert meta['policy']['run_encoder_gflops'] == pytest.approx(
        meta['encoder_gflops'] + padding / 1e9, rel=1e-5)


def test_captured_refuses_beyond_its_graph_bound(model):
    # The heads compile once per input shape; past dynamo's limit they
    # raise instead of running eager code silently.
    with torch.no_grad(), model.runtime(captured=True), \
            torch._dynamo.config.patch(recompile_limit=1):
        model._decode(torch.rand(1, 3, 64, 64))
        with pytest.raises(CapturedLimitError, match='head graphs'):
            model._decode(torch.rand(1, 3, 96, 96))
    # The encoder's pieces: a bound of one bucket (one graph per block),
    # then an input of another size needs more.
    model.backbone.token_buckets = (1.0, )
    model.backbone._pieces.clear()
    with torch.no_grad(), model.runtime(captured=True):
        model.encode(torch.rand(1, 3, 64, 64))
        with pytest.raises(CapturedLimitError, match='graphs for a block'):
            model.encode(torch.rand(1, 3, 96, 96))


def test_captured_flag_is_checked():
    cfg = Config.fromfile(
        f'{ROOT}/tests/configs/tiny_adamtl_swin_synthetic.py').model
    cfg.test_cfg = dict(captured='false')
    with pytest.raises(ValueError, match='test_cfg.captured must be True '
                       "or False, got 'false'"):
        MODELS.build(cfg)


def test_captured_pieces_follow_the_precision(model):
    # The pieces run without guards on the modules: a forward under
    # autocast gets pieces of its own, not the float32 ones, and equals
    # eager inference under the same autocast.
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        with torch.autocast('cpu', dtype=torch.bfloat16):
            ref, _, ref_stats = model._decode(x)
        with model.runtime(captured=True):
            model._decode(x)
            with torch.autocast('cpu', dtype=torch.bfloat16):
                got, _, stats = model._decode(x)
    assert len(model.backbone._pieces) == 2
    assert torch.equal(stats.blocks, ref_stats.blocks)
    for task in ref:
        assert got[task].dtype == ref[task].dtype
        torch.testing.assert_close(got[task].float(), ref[task].float(),
                                   atol=2e-2, rtol=2e-2)


def test_captured_batch_with_per_image_budgets(model):
    # Two images with their own budgets: blocks kept by one image only
    # run on it (a partial batch, no fused token selector), blocks both
    # keep run on both; outputs and decisions equal eager skipping's.
    x = torch.rand(2, 3, 64, 64)
    control = Control(budget=torch.tensor([0.1, 0.9]), budget_mode='input')
    stats, _ = encode_eager_and_captured(model.backbone, x, control)
    # The images ran different blocks: some ran on one image alone.
    assert (stats.blocks[0] != stats.blocks[1]).any()
    assert (stats.run_flops >= stats.encoder_flops).all()


def test_moving_or_casting_drops_the_compiled_pieces(model):
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad(), model.runtime(captured=True):
        model._decode(x)
    assert model.backbone._pieces and model._compiled_heads is not None
    model.double()
    assert not model.backbone._pieces and model._compiled_heads is None
    with torch.no_grad():
        ref = model._decode(x.double())[0]
        with model.runtime(captured=True):
            got = model._decode(x.double())[0]
    for task in ref:
        assert got[task].dtype == torch.float64
        torch.testing.assert_close(got[task], ref[task])
