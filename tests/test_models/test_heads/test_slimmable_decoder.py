"""SlimmableAdaMTLDecoder at a width equals an AdaMTL decoder of that
width."""

import pytest
import torch

from mmadamtl.models.heads import (AdaMTLDecoder, AtWidth,
                                   SlimmableAdaMTLDecoder)
from mmadamtl.models.utils.complexity import counted_flops


@pytest.mark.parametrize('width', [0.25, 0.5, 1.0])
def test_slim_decoder_equals_adamtl_decoder(width):
    """At width w the slimmable decoder computes what an AdaMTLDecoder of
    w x channels computes with the prefix weights (and that width's norms
    and prediction layer); its counted FLOPs are that decoder's."""
    torch.manual_seed(0)
    slim = SlimmableAdaMTLDecoder([32, 64], 5, channels=16,
                                  widths=(0.25, 0.5, 0.75, 1.0))
    ch = int(16 * width)
    ref = AdaMTLDecoder([32, 64], 5, channels=ch)
    for m in list(slim.modules()) + list(ref.modules()):
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight)
            torch.nn.init.uniform_(m.running_var, 0.5, 2)
    # The reference gets the prefixes of the slimmable decoder's weights.
    idx = slim.widths.index(width)
    src = slim.state_dict()
    state = {}
    for k, v in ref.state_dict().items():
        s = k.replace('.bn.', f'.norms.{idx}.').replace(
            'cls.', f'cls.{idx}.')
        s = s.replace('branches.0.0', 'branches.0.0').replace('.0.conv.',
                                                              '.conv.')
        w = src[s]
        if k == 'fuse.conv.weight':
            w = w.view(16, 2, 16, 1, 1)[:ch, :, :ch].reshape(ch, 2 * ch, 1, 1)
        elif w.dim() == 4:
            w = w[:v.shape[0], :v.shape[1]]
        elif w.dim() == 1 and w.shape != v.shape:
            w = w[:v.shape[0]]
        if k == 'cls.weight':
            # The narrow prediction layer's input is scaled by 16 / ch.
            w = w * (16 / ch)
        state[k] = w
    ref.load_state_dict(state)
    slim.eval()
    ref.eval()
    xs = [torch.randn(2, 32, 16, 16), torch.randn(2, 64, 8, 8)]
    with torch.no_grad():
        torch.testing.assert_close(slim(xs, width), ref(xs), atol=1e-5,
                                   rtol=1e-5)
        assert counted_flops(AtWidth(slim, width),
                             (xs, )) == counted_flops(ref, (xs, ))
