import pytest
import torch
import torch.nn.functional as F
from mmseg.models.backbones import SwinTransformer
from mmseg.models.backbones.swin import PatchMerging

from mmadamtl.models.backbones import (check_pretrained_backbone,
                                       convert_official_swin)
from mmadamtl.models.backbones.swin_checkpoint import _unfold_order

TINY = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
            window_size=4, pretrain_img_size=32)


def _official_patch_merging(x, hw, weight, norm_w, norm_b):
    """The official Swin PatchMerging, written out independently."""
    b, _, c = x.shape
    h, w = hw
    x = x.view(b, h, w, c)
    x0 = x[:, 0::2, 0::2]
    x1 = x[:, 1::2, 0::2]
    x2 = x[:, 0::2, 1::2]
    x3 = x[:, 1::2, 1::2]
    x = torch.cat([x0, x1, x2, x3], -1).view(b, -1, 4 * c)
    x = F.layer_norm(x, (4 * c, ), norm_w, norm_b)
    return x @ weight.t()


def test_patch_merging_reorder_matches_official():
    torch.manual_seed(0)
    c = 6
    pm = PatchMerging(in_channels=c, out_channels=2 * c)
    weight = torch.randn(2 * c, 4 * c)
    norm_w, norm_b = torch.randn(4 * c), torch.randn(4 * c)
    pm.reduction.weight.data = _unfold_order(weight)
    pm.norm.weight.data = _unfold_order(norm_w)
    pm.norm.bias.data = _unfold_order(norm_b)
    x = torch.randn(2, 8 * 8, c)
    ours, _ = pm(x, (8, 8))
    expected = _official_patch_merging(x, (8, 8), weight, norm_w, norm_b)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def _official_keys_from(model):
    """Rename mmseg keys to the official release's names (test fixture)."""
    out = {}
    for k, v in model.state_dict().items():
        if k.startswith(('norm0', 'norm1', 'norm2')):
            continue
        k = k.replace('stages.', 'layers.').replace('attn.w_msa.', 'attn.')
        k = k.replace('ffn.layers.0.0.', 'mlp.fc1.')
        k = k.replace('ffn.layers.1.', 'mlp.fc2.')
        k = k.replace('patch_embed.projection.', 'patch_embed.proj.')
        k = k.replace('norm3.', 'norm.')
        out[k] = v.clone()
    out['head.weight'] = torch.zeros(10, 128)
    return out


def test_convert_official_keys_load_strictly():
    src = SwinTransformer(**TINY)
    official = _official_keys_from(src)
    converted = convert_official_swin(official)
    dst = SwinTransformer(**TINY)
    missing, unexpected = dst.load_state_dict(converted, strict=False)
    assert not unexpected
    assert sorted(missing) == sorted(
        k for k in dst.state_dict() if k.startswith(('norm0', 'norm1',
                                                     'norm2')))
    # Blocks and stems are copied unchanged.
    torch.testing.assert_close(
        dst.stages[1].blocks[0].attn.w_msa.qkv.weight,
        src.stages[1].blocks[0].attn.w_msa.qkv.weight)
    torch.testing.assert_close(dst.norm3.weight, src.norm3.weight)


def test_pretrained_check(tmp_path):
    src = SwinTransformer(**TINY)
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict=src.state_dict()), good)
    ok = SwinTransformer(**TINY, init_cfg=dict(type='Pretrained',
                                               checkpoint=str(good)))
    check_pretrained_backbone(ok)
    ok.init_weights()
    torch.testing.assert_close(ok.stages[0].blocks[0].ffn.layers[1].weight,
                               src.stages[0].blocks[0].ffn.layers[1].weight)

    official = tmp_path / 'official.pth'
    torch.save(dict(model=_official_keys_from(src)), official)
    bad = SwinTransformer(**TINY, init_cfg=dict(type='Pretrained',
                                                checkpoint=str(official)))
    with pytest.raises(ValueError, match='convert_swin_checkpoint'):
        check_pretrained_backbone(bad)

    other = tmp_path / 'other.pth'
    torch.save(dict(state_dict=SwinTransformer(
        **dict(TINY, embed_dims=32)).state_dict()), other)
    wrong = SwinTransformer(**TINY, init_cfg=dict(type='Pretrained',
                                                  checkpoint=str(other)))
    with pytest.raises(ValueError, match='shape mismatch'):
        check_pretrained_backbone(wrong)
