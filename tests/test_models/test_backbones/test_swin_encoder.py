"""The package's Swin stage loop and its block runners."""
import pytest
import torch
from mmseg.registry import MODELS

from mmadamtl.models.backbones import SwinEncoder
from mmadamtl.models.layers import BlockRunner, FullRunner

SWIN = dict(pretrain_img_size=64, embed_dims=32, depths=[2, 2, 2, 2],
            num_heads=[1, 2, 4, 8], window_size=4)


def _pair():
    torch.manual_seed(0)
    ref = MODELS.build(dict(type='SwinTransformer', **SWIN))
    ref.init_weights()
    enc = SwinEncoder(**SWIN)
    enc.load_state_dict(ref.state_dict())
    ref.eval(), enc.eval()
    return ref, enc


def test_full_runner_is_mmseg_forward_bit_for_bit():
    ref, enc = _pair()
    assert set(enc.state_dict()) == set(ref.state_dict())
    x = torch.randn(2, 3, 70, 50)
    with torch.no_grad():
        for a, b, c in zip(ref(x), enc(x), enc.run_stages(x, FullRunner())):
            assert torch.equal(a, b) and torch.equal(a, c)


class _Recorder(BlockRunner):
    """Runs every block in full and records the loop's calls; taps the
    stage's raw tokens instead of its normed map."""

    def __init__(self):
        self.calls = []

    def start_stage(self, stage, x, hw_shape):
        self.calls.append(('start', stage, tuple(hw_shape)))

    def run_block(self, stage, index, block, x, hw_shape):
        self.calls.append(('block', stage, index))
        return super().run_block(stage, index, block, x, hw_shape)

    def end_stage(self, stage, x, hw_shape):
        self.calls.append(('end', stage, tuple(hw_shape)))

    def stage_output(self, stage, x, hw_shape, norm, dims):
        return {'raw': x, 'normed': super().stage_output(
            stage, x, hw_shape, norm, dims)}

    def finish(self, outs):
        return {k: [o[k] for o in outs] for k in ('raw', 'normed')}


def test_runner_sees_every_block_and_shapes_the_outputs():
    ref, enc = _pair()
    x = torch.randn(1, 3, 64, 64)
    runner = _Recorder()
    with torch.no_grad():
        out = enc.run_stages(x, runner)
        expected = ref(x)
    hws = [(16, 16), (8, 8), (4, 4), (2, 2)]
    want = []
    for i, hw in enumerate(hws):
        want += [('start', i, hw), ('block', i, 0), ('block', i, 1),
                 ('end', i, hw)]
    assert runner.calls == want
    # finish() decides what the encoder returns (MTLoRA: per task maps).
    for normed, raw, e, c in zip(out['normed'], out['raw'], expected,
                                 enc.num_features):
        assert torch.equal(normed, e)
        assert raw.shape[-1] == c and raw.dim() == 3


def test_taps_after_patch_merging():
    """out_after_downsample: each stage's output after its patch merging
    (the official code's taps), through norms of the tapped widths; the
    closed-form FLOPs still match mmengine's counter."""
    from mmadamtl.models.utils import counted_flops, swin_cost
    ref, _ = _pair()
    enc = SwinEncoder(**SWIN, out_after_downsample=True)
    enc.eval()  # mmseg's SwinTransformer.train() returns None
    assert enc.tap_dims == [64, 128, 256, 256]
    state = {k: v for k, v in ref.state_dict().items()
             if not k.startswith('norm')}
    missing, unexpected = enc.load_state_dict(state, strict=False)
    assert sorted(missing) == sorted(
        f'norm{i}.{p}' for i in range(4) for p in ('weight', 'bias'))
    assert not unexpected
    merged = []
    for stage in ref.stages:
        stage.register_forward_hook(
            lambda m, a, o: merged.append((o[0], o[1])))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref(x)
        outs = enc(x)
        for i, (out, (feat, hw)) in enumerate(zip(outs, merged)):
            expected = getattr(enc, f'norm{i}')(feat).view(
                2, *hw, -1).permute(0, 3, 1, 2)
            assert out.shape == (2, enc.tap_dims[i], *hw)
            assert torch.equal(out, expected)
    assert [o.shape[-1] for o in outs] == [8, 4, 2, 2]
    assert swin_cost(enc, (64, 64)).total == pytest.approx(
        counted_flops(enc, x[:1]), rel=1e-6)
