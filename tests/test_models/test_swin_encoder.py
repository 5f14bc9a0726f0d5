"""The package's Swin stage loop and its block runners."""
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
        for a, b, c in zip(ref(x), enc(x), enc(x, FullRunner())):
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
        out = enc(x, runner)
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
