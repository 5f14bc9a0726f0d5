"""Swin weights from timm (and the official layout) converted to mmseg's
keys, proven by equal stage features."""
import re

import pytest
import timm
import torch
from mmseg.registry import MODELS
from timm.models.swin_transformer import checkpoint_filter_fn

from mmadamtl.models.backbones import (SwinEncoder, convert_swin_checkpoint,
                                       swin_checkpoint_format)
from mmadamtl.models.layers import BlockRunner


class PreNormTaps(BlockRunner):
    """Stage outputs before mmseg's per-stage output norms, which timm's
    checkpoint has no counterpart of."""

    def stage_output(self, stage, x, hw_shape, norm, dims):
        return x.view(-1, *hw_shape, dims).permute(0, 3, 1, 2)


def _official_from_timm(state):
    """The official layout written from a timm state dict, independently
    of the package's mapping: patch merging at the end of stage i - 1,
    ``head`` for ``head.fc``, no ``attn_mask`` buffers."""
    out = {}
    for k, v in state.items():
        if k.endswith('attn_mask'):
            continue
        k = re.sub(r'^layers\.(\d+)\.downsample',
                   lambda m: f'layers.{int(m.group(1)) - 1}.downsample', k)
        out[k.replace('head.fc.', 'head.')] = v
    return out


def _features_equal(timm_model, mm_cfg, state, size):
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size)
    timm_model.eval()
    with torch.no_grad():
        ref = timm_model.forward_intermediates(x, norm=False,
                                               intermediates_only=True)
    # mmseg's own SwinTransformer, its per-stage output norms set to
    # identity, through its own forward.
    mmseg_swin = MODELS.build(dict(type='SwinTransformer', **mm_cfg))
    mmseg_swin.load_state_dict(state, strict=False)
    for i in range(4):
        setattr(mmseg_swin, f'norm{i}', torch.nn.Identity())
    mmseg_swin.eval()
    with torch.no_grad():
        for a, b in zip(mmseg_swin(x), ref):
            assert a.shape == b.shape
            assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    for backbone in (SwinEncoder(**mm_cfg),
                     MODELS.build(dict(type='AdaptiveSwinTransformer',
                                       **mm_cfg))):
        missing, unexpected = backbone.load_state_dict(state, strict=False)
        # Only mmseg's per-stage output norms are not in the checkpoint
        # (and the relative-position index buffers, rebuilt at
        # construction, which timm's checkpoints leave out).
        missing = [k for k in missing
                   if not k.endswith('relative_position_index')]
        assert sorted(missing) == sorted(
            f'norm{i}.{p}' for i in range(3) for p in ('weight', 'bias'))
        assert not unexpected
        backbone.eval()
        with torch.no_grad():
            outs = backbone.run_stages(x, PreNormTaps())
        assert len(outs) == len(ref) == 4
        for a, b in zip(outs, ref):
            assert a.shape == b.shape
            assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


TINY = dict(embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8),
            window_size=4)


def _tiny_timm(size):
    torch.manual_seed(1)
    return timm.models.swin_transformer.SwinTransformer(
        img_size=size, patch_size=4, num_classes=10, **TINY)


def _mm_cfg(embed, depths, heads, window, size):
    return dict(pretrain_img_size=size, embed_dims=embed, depths=depths,
                num_heads=heads, window_size=window, drop_path_rate=0.)


@pytest.mark.parametrize('layout', ['timm', 'official'])
def test_tiny_swin_features_equal(layout):
    """At 256x256 the last stage (8x8 tokens) spans four 4x4 windows, so
    every stage shifts in timm and in mmseg alike."""
    model = _tiny_timm(256)
    state = model.state_dict()
    if layout == 'official':
        state = _official_from_timm(state)
        # timm's own mapping of the official layout gives its model back.
        back = checkpoint_filter_fn(dict(state), model)
        assert back.keys() == {k for k in model.state_dict()
                               if not k.endswith('attn_mask')}
        for k, v in back.items():
            assert torch.equal(v, model.state_dict()[k]), k
    fmt, converted = convert_swin_checkpoint(state)
    assert fmt == layout
    _features_equal(model, _mm_cfg(32, [2, 2, 2, 2], [1, 2, 4, 8], 4, 256),
                    converted, 256)


def test_swin_tiny_224_model_at_448_features_equal():
    """timm's swin_tiny_patch4_window7_224 (random weights, no download) at
    448x448, where the last stage (14x14) spans four 7x7 windows."""
    model = timm.create_model('swin_tiny_patch4_window7_224',
                              pretrained=False, img_size=448)
    fmt, converted = convert_swin_checkpoint(model.state_dict())
    assert fmt == 'timm'
    _features_equal(model, _mm_cfg(96, [2, 2, 6, 2], [3, 6, 12, 24], 7,
                                   224), converted, 448)


def test_unknown_layout_is_refused_naming_keys():
    state = _tiny_timm(256).state_dict()
    state['layers.0.blocks.0.adapter.weight'] = torch.zeros(1)
    with pytest.raises(ValueError, match=r'layers\.0\.blocks\.0\.adapter'):
        convert_swin_checkpoint(state)
    with pytest.raises(ValueError, match=r"\['fc\.weight'\]"):
        swin_checkpoint_format({'fc.weight': torch.zeros(1)})
    converted = convert_swin_checkpoint(_tiny_timm(256).state_dict())[1]
    assert swin_checkpoint_format(converted) == 'mmseg'


def test_convert_tool_on_timm_and_unknown_files(tmp_path):
    import os
    import subprocess
    import sys

    from mmadamtl.utils import load_checkpoint_file
    from tests.conftest import ROOT
    src, dst = tmp_path / 'timm.pth', tmp_path / 'mmseg.pth'
    state = _tiny_timm(256).state_dict()
    torch.save(state, src)
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, 'tools/convert_swin_checkpoint.py', str(src),
         str(dst)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '(timm layout)' in proc.stdout
    written = load_checkpoint_file(str(dst))['state_dict']
    expected = convert_swin_checkpoint(state)[1]
    assert written.keys() == expected.keys()
    assert all(torch.equal(written[k], expected[k]) for k in expected)
    state['decoder.conv.weight'] = torch.zeros(1)
    torch.save(state, src)
    proc = subprocess.run(
        [sys.executable, 'tools/convert_swin_checkpoint.py', str(src),
         str(dst), '--overwrite'], cwd=ROOT, env=env, capture_output=True,
        text=True)
    assert proc.returncode != 0
    assert 'decoder.conv.weight' in proc.stderr
    # The refused conversion left the earlier output as it was.
    again = load_checkpoint_file(str(dst))['state_dict']
    assert all(torch.equal(again[k], expected[k]) for k in expected)
