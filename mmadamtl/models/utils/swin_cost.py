"""Closed-form multiply-add counts of mmseg's Swin Transformer.

The figures follow the conventions of mmengine's FLOP counter
(``mmengine.analysis``): a linear layer or matmul costs one multiply-add
per output element and reduction step, a LayerNorm costs 5 per element,
element-wise adds, softmax and GELU cost nothing. They are computed per
image from the input size, so the executed GFLOPs of one adaptive forward
can be summed from the decisions it took without a second, traced pass
(a tracer only sees the path it ran, and drops a gate that feeds only a
Python ``if``).
``tests/test_models/test_backbones/test_adaptive_swin.py`` checks the
static total against the counter.
"""
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from ..layers.slimmable import head_dim


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class BlockCost:
    """Multiply-adds of one Swin block for one image.

    ``attn``: norm1 and window attention (always run when the block runs);
    ``mlp_per_token``: norm2 and the MLP for one token; ``tokens``: tokens
    of the stage.
    """
    attn: float
    mlp_per_token: float
    tokens: int

    @property
    def full(self) -> float:
        return self.attn + self.mlp_per_token * self.tokens


@dataclass
class StageCost:
    hw: Tuple[int, int]
    dims: int
    blocks: List[BlockCost] = field(default_factory=list)
    # The output norm (if this stage is an output) and the patch merging
    # after it.
    fixed: float = 0.


@dataclass
class SwinCost:
    stem: float
    stages: List[StageCost]

    @property
    def blocks(self) -> List[BlockCost]:
        """Every block of every stage, in order."""
        return [b for s in self.stages for b in s.blocks]

    @property
    def blocks_total(self) -> float:
        return sum(b.full for b in self.blocks)

    @property
    def attn_total(self) -> float:
        """Norm1 and window attention of every block."""
        return sum(b.attn for b in self.blocks)

    @property
    def mlp_total(self) -> float:
        """Norm2 and the MLP of every token of every block."""
        return sum(b.mlp_per_token * b.tokens for b in self.blocks)

    @property
    def fixed_total(self) -> float:
        return self.stem + sum(s.fixed for s in self.stages)

    @property
    def total(self) -> float:
        return self.fixed_total + self.blocks_total


def swin_cost(swin, img_hw: Tuple[int, int],
              widths: Optional[Sequence[Tuple[int, int]]] = None
              ) -> SwinCost:
    """Per-image cost table of an mmseg ``SwinTransformer`` (or subclass)
    for an input of size ``img_hw``.

    ``widths``: per stage ``(heads, hidden)``, the attention heads and MLP
    neurons its blocks run (a slimmable Swin's sub-network, see
    ``mmadamtl.models.layers.run_slim_block``); None: all of them."""
    proj = swin.patch_embed.projection
    kh, kw = proj.kernel_size
    sh, sw = proj.stride
    h = _ceil_div(img_hw[0], sh) if kh == sh else (img_hw[0] - kh) // sh + 1
    w = _ceil_div(img_hw[1], sw) if kw == sw else (img_hw[1] - kw) // sw + 1
    dims = proj.out_channels
    stem = h * w * dims * proj.in_channels * kh * kw
    if swin.patch_embed.norm is not None:
        stem += 5 * h * w * dims
    stages = []
    for i, stage in enumerate(swin.stages):
        tokens = h * w
        cost = StageCost(hw=(h, w), dims=dims)
        for block in stage.blocks:
            ws = block.attn.window_size
            padded = _ceil_div(h, ws) * ws * _ceil_div(w, ws) * ws
            w_msa = block.attn.w_msa
            # Width of the attention: heads x head dim.
            inner = dims
            hidden = block.ffn.feedforward_channels
            if widths is not None:
                inner = widths[i][0] * head_dim(w_msa)
                hidden = widths[i][1]
            # qkv (3 C inner) + proj (inner C), q k^T and attn v.
            attn = 5 * tokens * dims + padded * (
                4 * dims * inner + 2 * ws * ws * inner)
            mlp = 5 * dims + 2 * dims * hidden
            cost.blocks.append(BlockCost(attn, mlp, tokens))
        after = getattr(swin, 'out_after_downsample', False) and \
            stage.downsample is not None
        if i in swin.out_indices and not after:
            cost.fixed += 5 * tokens * dims
        if stage.downsample is not None:
            down = stage.downsample
            h, w = _ceil_div(h, 2), _ceil_div(w, 2)
            in_dims = down.reduction.in_features
            if down.norm is not None:
                cost.fixed += 5 * h * w * in_dims
            cost.fixed += h * w * in_dims * down.reduction.out_features
            dims = down.reduction.out_features
            if i in swin.out_indices and after:
                cost.fixed += 5 * h * w * dims
        stages.append(cost)
    return SwinCost(stem=stem, stages=stages)
