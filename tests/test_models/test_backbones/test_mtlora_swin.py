"""MTLoRA's Swin: adapters, task streams, merging, counts, bad configs."""
import copy
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmseg.registry import MODELS

from mmadamtl.models.backbones import (Control, MTLoRASwinTransformer,
                                       SwinEncoder)
from mmadamtl.models.layers import LoRALinear
from tests.conftest import ROOT

TASKS = ['semseg', 'saliency', 'depth']
SWIN = dict(
    pretrain_img_size=32,
    embed_dims=16,
    depths=[2, 1],
    num_heads=[1, 2],
    window_size=4,
    strides=(4, 2),
    out_indices=(0, 1),
    drop_path_rate=0.0,
    out_after_downsample=True)


def _backbone(**lora):
    torch.manual_seed(0)
    lora = dict(dict(r=4, tasks=TASKS, dropout=0.0), **lora)
    model = MTLoRASwinTransformer(**SWIN, lora=lora)
    model.init_weights()
    model.eval()
    return model


def _randomise_adapters(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if 'lora_' in n or 'task_' in n:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def _static_copy(model):
    """A plain SwinEncoder with ``model``'s base weights."""
    static = SwinEncoder(**SWIN)
    static.eval()
    missing, unexpected = static.load_state_dict(model.state_dict(),
                                                 strict=False)
    assert not missing
    assert all('lora_' in k or 'task_' in k for k in unexpected)
    return static


def test_fresh_adapters_leave_the_swin_unchanged():
    """B starts at zero: every task's features are the static Swin's."""
    model = _backbone()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        ref = _static_copy(model)(x)
    assert set(out) == set(TASKS)
    for task in TASKS:
        for a, b in zip(out[task], ref):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_layers_keep_mmseg_keys_and_adapters_have_their_own():
    model = _backbone()
    keys = set(model.state_dict())
    static_keys = set(SwinEncoder(**SWIN).state_dict())
    assert static_keys <= keys
    added = keys - static_keys
    # TA-LoRA on qkv, proj, fc1, fc2 of the 3 blocks; TS-LoRA on proj, fc1,
    # fc2 of the last block of each stage (2), per task.
    assert len([k for k in added if 'lora_' in k]) == 3 * 4 * 2
    assert len([k for k in added if 'task_' in k]) == 2 * 3 * len(TASKS) * 2
    assert 'stages.0.blocks.1.attn.w_msa.proj.task_A.semseg' in added
    assert 'stages.0.blocks.0.attn.w_msa.proj.task_A.semseg' not in added
    assert not any('qkv.task_' in k for k in added)
    layer = model.stages[0].blocks[0].attn.w_msa.qkv
    assert layer.lora_A.shape == (4, 16) and layer.lora_B.shape == (48, 4)


def _reference_task_block(block, x, hw, task):
    """MTLoRA's task stream through one block, written out: the frozen
    weights see the shared stream, the task pair the task's own."""
    attn, ffn = block.attn, block.ffn
    proj = attn.w_msa.proj
    fc1, fc2 = ffn.layers[0][0], ffn.layers[1]

    def lora(layer, v):
        return layer.scale * F.linear(F.linear(v, layer.lora_A),
                                      layer.lora_B)

    def task_lora(layer, v):
        return layer.task_scale * F.linear(
            F.linear(v, layer.task_A[task]), layer.task_B[task])

    # The attention's output before its projection: run the attention
    # with the projection set to the identity.
    with torch.no_grad():
        saved = proj.weight.clone(), proj.bias.clone(), proj.rank
        proj.weight.copy_(torch.eye(proj.weight.shape[0]))
        proj.bias.zero_()
        proj.rank = 0
        a = attn(block.norm1(x), hw)
        proj.weight.copy_(saved[0])
        proj.bias.copy_(saved[1])
        proj.rank = saved[2]
    shared_mid = x + F.linear(a, proj.weight, proj.bias) + lora(proj, a)
    t1 = x + F.linear(a, proj.weight, proj.bias) + task_lora(proj, a)
    n_shared = block.norm2(shared_mid)
    h_shared = F.gelu(F.linear(n_shared, fc1.weight, fc1.bias) +
                      lora(fc1, n_shared))
    f1 = F.linear(n_shared, fc1.weight, fc1.bias) + task_lora(
        fc1, block.norm2(t1))
    h_t = F.gelu(f1)
    f2 = F.linear(h_shared, fc2.weight, fc2.bias) + task_lora(fc2, h_t)
    return t1 + f2


def test_task_streams_against_the_formula():
    model = _backbone()
    _randomise_adapters(model)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        # Stage 0 by hand: patch embedding, block 0 shared, block 1 the
        # task stream, then the task's own patch merging and tap norm.
        h, hw = model.patch_embed(x)
        h = model.stages[0].blocks[0](h, hw)
        for task in TASKS:
            t = _reference_task_block(model.stages[0].blocks[1], h, hw, task)
            t, thw = model.stages[0].downsample(t, hw)
            ref = model.norm0(t).view(2, *thw, -1).permute(0, 3, 1, 2)
            torch.testing.assert_close(out[task][0], ref, rtol=1e-5,
                                       atol=1e-5)
        # The tasks differ, since their pairs differ.
        assert not torch.allclose(out['semseg'][1], out['depth'][1])


def test_only_requested_streams_run_and_match_the_full_run():
    model = _backbone()
    _randomise_adapters(model)
    x = torch.rand(1, 3, 32, 32)
    calls = []
    layer = model.stages[1].blocks[0].ffn.layers[1]
    original = layer.task_delta

    def counting(task, v):
        calls.append(task)
        return original(task, v)

    layer.task_delta = counting
    with torch.no_grad():
        every = model(x)
        calls.clear()
        one = model(x, Control(tasks=['depth']))
    assert calls == ['depth']
    assert list(one) == ['depth']
    for a, b in zip(one['depth'], every['depth']):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_merge_matches_unmerged_and_loads_into_a_plain_config():
    model = _backbone()
    _randomise_adapters(model)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        merged = copy.deepcopy(model)
        # 12 TA pairs; the 2 x 3 in the layers the streams fork from stay.
        assert merged.merge_lora() == 3 * 4 - 2 * 3
        after = merged(x)
    for task in TASKS:
        for a, b in zip(before[task], after[task]):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert len([k for k in merged.state_dict() if 'lora_' in k]) == 2 * 6
    plain = MTLoRASwinTransformer(
        **SWIN, lora=dict(r=4, tasks=TASKS, dropout=0.0, merged=True))
    plain.load_state_dict(merged.state_dict(), strict=True)
    with torch.no_grad():
        plain.eval()
        again = plain(x)
    for a, b in zip(after['semseg'], again['semseg']):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_mtlora_plus_adapts_the_patch_merging():
    model = _backbone(downsample=True)
    reduction = model.stages[0].downsample.reduction
    assert isinstance(reduction, LoRALinear) and reduction.rank == 4
    assert reduction.bias is None


@pytest.mark.parametrize('lora, key', [
    (dict(r=0), 'lora.r'),
    (dict(r=-4), 'lora.r'),
    (dict(task_r=0), 'lora.task_r'),
    (dict(targets=['qkv', 'fc3']), 'lora.targets'),
    (dict(task_targets=['qkv']), 'lora.task_targets'),
    (dict(rank=8), 'unknown key'),
    (dict(tasks=['semseg', 'sailency']), 'lora.tasks'),
    (dict(dropout=1.0), 'lora.dropout'),
    (dict(stream_dropout='no'), 'lora.stream_dropout'),
])
def test_bad_lora_configs_name_the_key(lora, key):
    with pytest.raises(ValueError, match=key):
        MTLoRASwinTransformer(**SWIN, lora=dict(dict(tasks=TASKS), **lora))


def _paper_model(r):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'mtlora_swin_pascal.py'))
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.lora.r = r
    return cfg, MODELS.build(cfg.model)


@pytest.mark.parametrize('r, paper', [(64, 8.34e6), (32, 6.08e6),
                                      (16, 4.95e6)])
def test_trainable_parameters_match_the_paper(r, paper):
    """MTLoRA's Table: Swin-T, the four PASCAL tasks, TS rank 4, the
    HRNet-style decoders on [192, 384, 768, 768] reduced to
    [18, 36, 72, 144]."""
    cfg, model = _paper_model(r)
    assert list(cfg.model.decode_head.tasks) == [
        'semseg', 'human_parts', 'saliency', 'normals']
    trainable = sum(p.numel() for p in model.parameters()
                    if p.requires_grad)
    assert abs(trainable / paper - 1) < 0.005, trainable
    # What trains, by kind; the block weights themselves are frozen.
    for name, p in model.named_parameters():
        kind = ('decode_head' in name or 'lora_' in name or
                'task_' in name or 'norm' in name or
                'patch_embed' in name or 'relative_position' in name or
                'downsample.reduction' in name)
        assert p.requires_grad == kind, name
    # As the official code: dropout on the proj task pairs, none on the
    # fc1/fc2 ones (their stream inputs).
    flags = {name: m.task_dropout
             for name, m in model.backbone.named_modules()
             if isinstance(m, LoRALinear) and m.task_A}
    assert flags and all(v == name.endswith('proj')
                         for name, v in flags.items()), flags


def test_lora_task_without_decoder_fails():
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'mtlora_swin_pascal.py'))
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.lora.tasks = ['semseg', 'depth']
    with pytest.raises(ValueError, match='backbone.lora.tasks.*depth'):
        MODELS.build(cfg.model)


def test_counted_flops_add_the_adapters_by_hand():
    """The encoder's counted multiply-adds minus the static Swin's are the
    adapters' and task streams' by hand: L tokens x rank x (in + out)
    per pair, plus the task streams' norms, activations and mergings as
    the counter sees them."""
    model = _backbone(targets=[])  # task pairs only
    static = _static_copy(model)
    from mmadamtl.models.utils.complexity import counted_flops
    base = counted_flops(static, torch.zeros(1, 3, 32, 32))
    one = model.encoder_flops((32, 32), ['semseg'])
    two = model.encoder_flops((32, 32), ['semseg', 'depth'])
    three = model.encoder_flops((32, 32), TASKS)
    # Stage 0: 64 tokens of 16 channels, stage 1: 16 tokens of 32.
    pairs = 0
    for tokens, c in ((64, 16), (16, 32)):
        pairs += tokens * 4 * (c + c)  # proj
        pairs += tokens * 4 * (c + 4 * c) * 2  # fc1, fc2
    # Every further stream costs the same: its pairs, its second half of
    # the block, its merging and its tap norms.
    assert three - two == pytest.approx(two - one, rel=1e-9)
    assert two - one > pairs
    full = _backbone()
    ta = 0
    for tokens, c, blocks in ((64, 16, 2), (16, 32, 1)):
        ta += blocks * tokens * 4 * ((c + 3 * c) + (c + c) + 2 * (c + 4 * c))
    # The last stage's shared output is not computed when every task runs
    # its own stream, so its fc2 pair does not run either.
    ta -= 16 * 4 * (4 * 32 + 32)
    assert full.encoder_flops((32, 32), ['semseg']) - one == pytest.approx(
        ta, rel=1e-9)
    # A model without task streams runs every pair.
    shared_only = _backbone(task_targets=[])
    assert shared_only.encoder_flops((32, 32)) - base == pytest.approx(
        ta + 16 * 4 * (4 * 32 + 32), rel=1e-9)


def test_autocast_training_step_reaches_the_adapters():
    """What ``--amp`` runs (mmengine's AmpOptimWrapper needs a GPU; on CPU
    the same autocast in bfloat16): gradients reach the adapters and
    stay finite."""
    model = _backbone()
    model.train()
    x = torch.rand(2, 3, 32, 32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = model(x)
        loss = sum(m.float().square().mean() for t in TASKS
                   for m in out[t])
    loss.backward()
    layer = model.stages[0].blocks[1].attn.w_msa.proj
    for p in (layer.lora_B, layer.task_B['semseg']):
        assert p.grad is not None and torch.isfinite(p.grad).all()
        assert p.grad.abs().sum() > 0


def test_encoder_of_a_static_multi_task_checkpoint_loads(tmp_path):
    """``init_cfg=Pretrained`` with a static multi-task model's checkpoint
    (mmseg's taps before the patch mergings): the blocks load, the tap
    norms of other widths stay at their initialisation, the adapters at
    theirs."""
    static_swin = dict(SWIN, out_after_downsample=False)
    static = SwinEncoder(**static_swin)
    with torch.no_grad():
        for p in static.parameters():
            p.add_(1.0)
    path = str(tmp_path / 'static_mt.pth')
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in
                                static.state_dict().items()}), path)
    model = MTLoRASwinTransformer(
        **SWIN, lora=dict(r=4, tasks=TASKS),
        init_cfg=dict(type='Pretrained', checkpoint=path))
    from mmadamtl.models.backbones import check_pretrained_backbone
    check_pretrained_backbone(model)
    with pytest.warns(UserWarning, match='tap norms of another width'):
        model.init_weights()
    own = model.state_dict()
    key = 'stages.0.blocks.0.attn.w_msa.qkv.weight'
    assert torch.equal(own[key], static.state_dict()[key])
    assert own['norm0.weight'].shape == (32, )
    assert torch.equal(own['norm0.weight'], torch.ones(32))
    assert not model.stages[0].blocks[0].attn.w_msa.qkv.lora_B.any()


def test_forking_block_keeps_the_shared_stream_bit_equal():
    """The runner's step-by-step forward of a forking block gives the
    shared stream exactly mmseg's ``block(x)``, adapters included."""
    from mmadamtl.models.layers.mtlora_runner import MTLoRARunner
    model = _backbone()
    _randomise_adapters(model)
    with torch.no_grad():
        h, hw = model.patch_embed(torch.rand(2, 3, 32, 32))
        runner = MTLoRARunner(model, TASKS)
        runner.start_stage(0, h, hw)
        block = model.stages[0].blocks[1]
        assert torch.equal(runner.run_block(0, 1, block, h, hw),
                           block(h, hw))


@pytest.mark.parametrize('stream_dropout', [True, False])
def test_stream_dropout_of_the_task_pairs(stream_dropout):
    """``stream_dropout=False`` (the official code): the fc1/fc2 task
    pairs read their stream input without dropout, in training too; the
    proj pairs and the shared pairs keep theirs."""
    model = _backbone(dropout=0.5, stream_dropout=stream_dropout)
    model.train()  # mmseg's Swin returns None
    _randomise_adapters(model)
    block = model.stages[0].blocks[1]
    layers = dict(proj=block.attn.w_msa.proj, fc1=block.ffn.layers[0][0],
                  fc2=block.ffn.layers[1])
    for name, layer in layers.items():
        v = torch.rand(2, 16, layer.in_features)
        exact = layer.task_scale * F.linear(
            F.linear(v, layer.task_A['depth']), layer.task_B['depth'])
        got = layer.task_delta('depth', v)
        keeps = name == 'proj' or stream_dropout
        assert layer.task_dropout == keeps, name
        assert torch.allclose(got, exact) != keeps, name
        shared = layer.with_shared(v, torch.zeros(()))
        no_drop = layer.scale * F.linear(F.linear(v, layer.lora_A),
                                         layer.lora_B)
        assert not torch.allclose(shared, no_drop), name
