"""SlimmableSwinTransformer: the widest encoder is mmseg's Swin, a
sub-network is timm's Swin built narrow, and its closed-form GFLOPs are
the counter's."""

import pytest
import timm
import torch
from mmseg.registry import MODELS

from mmadamtl.models.backbones import (Control, SwinEncoder,
                                       convert_swin_checkpoint)
from mmadamtl.models.layers import BlockRunner
from mmadamtl.models.utils.complexity import counted_flops

SWIN = dict(pretrain_img_size=64, embed_dims=32, depths=[2, 2, 2, 2],
            num_heads=[2, 4, 8, 16], window_size=4, drop_path_rate=0.)


def _slim(**kw):
    return MODELS.build(dict(dict(type='SlimmableSwinTransformer', **SWIN,
                                  head_choices=(0.5, 1.0),
                                  mlp_ratio_choices=(1, 2, 4)), **kw))


class PreNormTaps(BlockRunner):

    def stage_output(self, stage, x, hw_shape, norm, dims):
        return x.view(-1, *hw_shape, dims).permute(0, 3, 1, 2)


@pytest.mark.parametrize('size', [(64, 64), (72, 56)])
def test_widest_encoder_is_bit_equal_to_static(size):
    """Max widths, through the sliced path, equal mmseg's forward bit for
    bit (shifted windows and padding included)."""
    torch.manual_seed(0)
    static = SwinEncoder(**SWIN)
    slim = _slim()
    slim.load_state_dict(static.state_dict())
    static.eval()
    slim.eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        for a, b in zip(static(x), slim(x)):
            assert torch.equal(a, b)


def _embed(wide: dict, narrow: dict, heads: dict, head_dim: int) -> dict:
    """Write a narrow Swin's weights into the prefixes of a wide one's, in
    mmseg's layouts, independently of the package's slicing."""
    out = {}
    for k, w in wide.items():
        n = narrow.get(k)
        if n is None or n.shape == w.shape:
            out[k] = w if n is None else n
            continue
        w = w.clone()
        stage = int(k.split('.')[1])
        total, h = w.shape[0] // (3 * head_dim), heads[stage]
        if k.endswith('qkv.weight'):
            w.view(3, total, head_dim, -1)[:, :h] = n.view(3, h, head_dim, -1)
        elif k.endswith('qkv.bias'):
            w.view(3, total, head_dim)[:, :h] = n.view(3, h, head_dim)
        elif k.endswith('relative_position_bias_table'):
            w[:, :n.shape[1]] = n
        elif k.endswith('proj.weight') or k.endswith('layers.1.weight'):
            w[:, :n.shape[1]] = n
        elif 'layers.0.0' in k:
            w[:n.shape[0]] = n
        else:
            raise AssertionError(k)
        out[k] = w
    return out


def test_sliced_encoder_equals_narrow_timm_swin_and_its_flops():
    """The sub-network (half the heads, MLP ratio 1) computes what timm's
    Swin built narrow (heads 1/2/4/8 of dim 16, MLP ratio 1) computes
    with the same weights, and its closed-form block GFLOPs equal
    mmengine's counter on that narrow model."""
    torch.manual_seed(0)
    narrow = timm.models.swin_transformer.SwinTransformer(
        img_size=256, patch_size=4, embed_dim=32, depths=(2, 2, 2, 2),
        num_heads=(1, 2, 4, 8), head_dim=16, window_size=4, mlp_ratio=1.,
        num_classes=0)
    for m in narrow.modules():
        if hasattr(m, 'fused_attn'):
            m.fused_attn = False
    narrow.eval()
    _, converted = convert_swin_checkpoint(narrow.state_dict())
    slim = _slim()
    slim.eval()
    slim.load_state_dict(
        _embed(slim.state_dict(), converted, {0: 1, 1: 2, 2: 4, 3: 8}, 16))
    config = slim.check_config(dict(heads=0.5, mlp_ratio=1))
    assert slim.stage_widths(config) == [(1, 32), (2, 64), (4, 128),
                                         (8, 256)]
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        ref = narrow.forward_intermediates(x, norm=False,
                                           intermediates_only=True)
        outs = slim.run_stages(x, _runner(slim, config))
    for a, b in zip(outs, ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(narrow, (x, ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    by_module = analyzer.by_module()
    counted = sum(by_module[f'layers.{i}.blocks'] for i in range(4))
    assert slim.cost((256, 256), config).blocks_total == counted


def _runner(slim, config):
    from mmadamtl.models.layers.slimmable import SlimRunner

    class Runner(SlimRunner, PreNormTaps):
        pass
    return Runner(slim.stage_widths(config))


@pytest.mark.parametrize('spec', ['min', dict(heads=0.5, mlp_ratio=2),
                                  [dict(heads=1.0, mlp_ratio=1),
                                   dict(heads=0.5, mlp_ratio=4),
                                   dict(heads=0.5, mlp_ratio=1),
                                   dict(heads=1.0, mlp_ratio=2)]])
def test_sliced_encoder_flops_equal_counter(spec):
    """Closed form of the running sub-network = mmengine's counter traced
    on the sliced forward (stem, merging and output norms included)."""
    slim = _slim()
    slim.eval()
    config = slim.check_config(spec)

    class Flat(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.enc = slim

        def forward(self, x):
            return tuple(self.enc(x, Control(subnet=config)))
    with torch.no_grad():
        counted = counted_flops(Flat(), torch.zeros(1, 3, 72, 56))
    assert slim.encoder_flops((72, 56), config=config) == counted
    assert counted < slim.encoder_flops((72, 56), config=slim.max_config)
