"""Importance re-ordering of a Swin encoder's heads and MLP neurons: the
widest encoder computes the same, narrow prefixes change, the units come
by decreasing importance and move with all their weights."""
import copy

import torch
from mmseg.registry import MODELS

from mmadamtl.models.backbones import Control
from mmadamtl.models.layers import reorder_by_importance
from tests.test_models.test_backbones.test_slimmable_swin import SWIN, _slim


def _random_slim(seed=0, **kw):
    """A slimmable Swin whose every weight (bias tables included, zero
    at construction) is random."""
    torch.manual_seed(seed)
    slim = _slim(**kw)
    with torch.no_grad():
        for p in slim.parameters():
            p.normal_(0, 0.2)
    slim.eval()
    return slim


def _hand_scores(block):
    """Per head and per neuron the importance, written out by rows and
    columns."""
    w_msa, ffn = block.attn.w_msa, block.ffn
    heads = w_msa.num_heads
    d = w_msa.qkv.weight.shape[0] // (3 * heads)
    qkv, proj = w_msa.qkv.weight, w_msa.proj.weight
    head = []
    for h in range(heads):
        rows = sum(float(qkv[j * heads * d + h * d:
                             j * heads * d + (h + 1) * d].abs().sum())
                   for j in range(3))
        head.append(rows * float(proj[:, h * d:(h + 1) * d].abs().sum()))
    fc1, fc2 = ffn.layers[0][0].weight, ffn.layers[1].weight
    neuron = [float(fc1[i].abs().sum()) * float(fc2[:, i].abs().sum())
              for i in range(fc1.shape[0])]
    return head, neuron


def test_widest_unchanged_narrow_changed():
    slim = _random_slim()
    x = torch.randn(2, 3, 64, 64)
    narrow = Control(subnet=slim.check_config(dict(heads=0.5, mlp_ratio=1)))
    with torch.no_grad():
        wide_before = slim(x)
        narrow_before = slim(x, narrow)
        reorder_by_importance(slim)
        wide_after = slim(x)
        narrow_after = slim(x, narrow)
    for a, b in zip(wide_before, wide_after):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert max(float((a - b).abs().max())
               for a, b in zip(narrow_before, narrow_after)) > 1e-2


def test_units_by_decreasing_importance_with_all_their_weights():
    slim = _random_slim(seed=1)
    old = copy.deepcopy(slim)
    orders = reorder_by_importance(slim)
    for s, stage in enumerate(slim.stages):
        for b, block in enumerate(stage.blocks):
            head_order, neuron_order = orders[s][b]
            old_block = old.stages[s].blocks[b]
            old_heads, old_neurons = _hand_scores(old_block)
            new_heads, new_neurons = _hand_scores(block)
            assert new_heads == sorted(old_heads, reverse=True)
            assert new_neurons == sorted(old_neurons, reverse=True)
            assert [old_heads[i] for i in head_order] == new_heads
            assert [old_neurons[i] for i in neuron_order] == new_neurons
            # New head k is old head head_order[k], every weight of it.
            w, o = block.attn.w_msa, old_block.attn.w_msa
            heads = w.num_heads
            d = w.qkv.weight.shape[0] // (3 * heads)
            for k, i in enumerate(head_order):
                for j in range(3):
                    new = slice(j * heads * d + k * d,
                                j * heads * d + (k + 1) * d)
                    was = slice(j * heads * d + i * d,
                                j * heads * d + (i + 1) * d)
                    assert torch.equal(w.qkv.weight[new], o.qkv.weight[was])
                    assert torch.equal(w.qkv.bias[new], o.qkv.bias[was])
                assert torch.equal(w.relative_position_bias_table[:, k],
                                   o.relative_position_bias_table[:, i])
                assert torch.equal(w.proj.weight[:, k * d:(k + 1) * d],
                                   o.proj.weight[:, i * d:(i + 1) * d])
            fc1, fc2 = block.ffn.layers[0][0], block.ffn.layers[1]
            ofc1, ofc2 = old_block.ffn.layers[0][0], old_block.ffn.layers[1]
            for k, i in enumerate(neuron_order):
                assert torch.equal(fc1.weight[k], ofc1.weight[i])
                assert fc1.bias[k] == ofc1.bias[i]
                assert torch.equal(fc2.weight[:, k], ofc2.weight[:, i])
            # Everything else stays.
            assert torch.equal(w.proj.bias, o.proj.bias)
            assert torch.equal(fc2.bias, ofc2.bias)
    assert any(o[0] != sorted(o[0]) for stage in orders for o in stage)


def test_option_reorders_the_pretrained_checkpoint(tmp_path):
    """``reorder_importance=True``: after ``init_weights`` loads a
    ``Pretrained`` checkpoint, the encoder holds it re-ordered."""
    source = _random_slim(seed=2)
    path = str(tmp_path / 'swin.pth')
    torch.save(dict(state_dict=source.state_dict()), path)
    pretrained = dict(type='Pretrained', checkpoint=path)
    built = MODELS.build(dict(
        type='SlimmableSwinTransformer', **SWIN, head_choices=(0.5, 1.0),
        mlp_ratio_choices=(1, 2, 4), reorder_importance=True,
        init_cfg=pretrained))
    built.init_weights()
    expect = copy.deepcopy(source)
    reorder_by_importance(expect)
    got = built.state_dict()
    for k, v in expect.state_dict().items():
        assert torch.equal(got[k], v), k
    # Off (the default): the checkpoint as it is.
    plain = _slim(init_cfg=pretrained)
    plain.init_weights()
    assert torch.equal(plain.stages[0].blocks[0].ffn.layers[0][0].weight,
                       source.stages[0].blocks[0].ffn.layers[0][0].weight)


def test_narrow_export_of_a_reordered_model():
    """The narrow model's config leaves the option out (the weights it
    receives are already re-ordered)."""
    from mmadamtl.apis import init_model
    from mmadamtl.apis.deploy import narrow_model
    from tests.test_apis.test_deploy import TINY_CONTROLLABLE
    model = init_model(TINY_CONTROLLABLE, cfg_options={
        'model.backbone.reorder_importance': True})
    assert model.backbone.reorder_importance
    with model.runtime(subnet=dict(encoder='min')):
        cfg, narrow = narrow_model(model, model.control((64, 64)))
    assert 'reorder_importance' not in cfg.model.backbone
    assert narrow.backbone.stages[0].blocks[0].attn.w_msa.num_heads == 1
