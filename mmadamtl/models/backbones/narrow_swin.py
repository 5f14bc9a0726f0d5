"""A physically narrow Swin: a controllable model's sub-network as a small
static encoder of its own (what ``tools/deploy.py`` exports)."""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
from mmseg.registry import MODELS

from ..layers.slimmable import SlimRunner, head_dim, qkv_rows
from ..utils.swin_cost import SwinCost, swin_cost
from .encoder import NO_CONTROL, Control, constant_stats
from .swin_encoder import SwinEncoder


def _linear(in_features: int, out_features: int, like: nn.Linear
            ) -> nn.Linear:
    return nn.Linear(in_features, out_features, bias=like.bias is not None,
                     device=like.weight.device, dtype=like.weight.dtype)


@MODELS.register_module()
class NarrowSwinTransformer(SwinEncoder):
    """mmseg's Swin whose blocks of stage ``i`` have ``heads[i]`` attention
    heads (of the head dimension ``embed_dims_i / num_heads[i]``) and
    ``mlp_hidden[i]`` MLP neurons, as weights of those sizes: the
    sub-network ``((heads[i] / num_heads[i], mlp_hidden[i] / embed_dims_i),
    ...)`` of a ``SlimmableSwinTransformer`` of the same other arguments,
    made a static model (its weights the prefixes the slimmable one runs,
    ``narrow_state_dict``). It computes what the slimmable encoder
    computes at that sub-network (the same slice-free code path,
    ``run_slim_block``) at the cost of its own widths.

    The state-dict keys are mmseg's Swin's; only the shapes of ``qkv``,
    ``proj``, ``relative_position_bias_table``, ``fc1`` and ``fc2`` are
    narrower.

    Args:
        heads: Attention heads run per stage (1 to ``num_heads[i]``).
        mlp_hidden: MLP neurons per stage (1 to the built MLP width).
        Others: ``SwinEncoder``'s (``num_heads`` fixes the head
            dimension).
    """

    def __init__(self, *args, heads: Sequence[int],
                 mlp_hidden: Sequence[int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        n = len(self.stages)
        if len(heads) != n or len(mlp_hidden) != n:
            raise ValueError(f'NarrowSwinTransformer: heads and mlp_hidden '
                             f'need one entry per stage ({n}), got '
                             f'{list(heads)} and {list(mlp_hidden)}')
        self.widths: List[Tuple[int, int]] = []
        for s, (stage, h, m) in enumerate(zip(self.stages, heads,
                                              mlp_hidden)):
            first = stage.blocks[0]
            total = first.attn.w_msa.num_heads
            full_hidden = first.ffn.feedforward_channels
            if not (isinstance(h, int) and 1 <= h <= total):
                raise ValueError(f'NarrowSwinTransformer: heads[{s}] must '
                                 f'be a whole number in [1, {total}], got '
                                 f'{h!r}')
            if not (isinstance(m, int) and 1 <= m <= full_hidden):
                raise ValueError(f'NarrowSwinTransformer: mlp_hidden[{s}] '
                                 f'must be a whole number in [1, '
                                 f'{full_hidden}], got {m!r}')
            for block in stage.blocks:
                self._narrow_block(block, h, m)
            self.widths.append((h, m))

    @staticmethod
    def _narrow_block(block: nn.Module, heads: int, hidden: int) -> None:
        w_msa = block.attn.w_msa
        d = head_dim(w_msa)
        c = w_msa.qkv.in_features
        inner = heads * d
        w_msa.qkv = _linear(c, 3 * inner, w_msa.qkv)
        w_msa.proj = _linear(inner, c, w_msa.proj)
        table = w_msa.relative_position_bias_table
        w_msa.relative_position_bias_table = nn.Parameter(
            table.detach()[:, :heads].clone())
        w_msa.num_heads = heads
        block.attn.num_heads = heads
        ffn = block.ffn
        fc1, fc2 = ffn.layers[0][0], ffn.layers[1]
        ffn.layers[0][0] = _linear(c, hidden, fc1)
        ffn.layers[1] = _linear(hidden, fc2.out_features, fc2)
        ffn.feedforward_channels = hidden

    def cost(self, img_hw: Sequence[int]) -> SwinCost:
        """Per-image closed-form cost at its own widths."""
        key = (int(img_hw[0]), int(img_hw[1]))
        if key not in self._costs:
            self._costs[key] = swin_cost(self, key, self.widths)
        return self._costs[key]

    def encode(self, x: torch.Tensor, control: Control = NO_CONTROL):
        """Every block at its (narrow) widths, and their cost."""
        self.check_control(control)
        outs = self.run_stages(x, SlimRunner(self.widths))
        return outs, constant_stats(
            self.cost(x.shape[2:]).total, x.shape[0], x.device)


def narrow_swin_state(slimmable: nn.Module,
                      widths: Sequence[Tuple[int, int]]) -> dict:
    """The state dict of the ``NarrowSwinTransformer`` with per-stage
    ``widths`` ``(heads, hidden)`` cut from ``slimmable`` (a
    ``SlimmableSwinTransformer``): every tensor as it is, the narrowed
    ones as the prefixes the slimmable encoder runs at those widths."""
    state = {k: v.detach().clone() for k, v in slimmable.state_dict().items()}
    for s, (stage, (heads, hidden)) in enumerate(zip(slimmable.stages,
                                                     widths)):
        for b, block in enumerate(stage.blocks):
            pre = f'stages.{s}.blocks.{b}.'
            w_msa = block.attn.w_msa
            d = head_dim(w_msa)
            weight, bias = qkv_rows(w_msa, heads)
            state[pre + 'attn.w_msa.qkv.weight'] = weight.detach().clone()
            if bias is not None:
                state[pre + 'attn.w_msa.qkv.bias'] = bias.detach().clone()
            state[pre + 'attn.w_msa.proj.weight'] = \
                w_msa.proj.weight.detach()[:, :heads * d].clone()
            state[pre + 'attn.w_msa.relative_position_bias_table'] = \
                w_msa.relative_position_bias_table.detach()[:, :heads] \
                .clone()
            fc1, fc2 = block.ffn.layers[0][0], block.ffn.layers[1]
            state[pre + 'ffn.layers.0.0.weight'] = \
                fc1.weight.detach()[:hidden].clone()
            if fc1.bias is not None:
                state[pre + 'ffn.layers.0.0.bias'] = \
                    fc1.bias.detach()[:hidden].clone()
            state[pre + 'ffn.layers.1.weight'] = \
                fc2.weight.detach()[:, :hidden].clone()
    return state
