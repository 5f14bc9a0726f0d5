"""Width-sliced views of mmseg's Swin blocks and slimmable conv layers.

Swin (``run_slim_block``): a block runs ``heads`` of its attention heads
and ``hidden`` of its MLP neurons, as prefixes of mmseg's own weights, so
the full widths are mmseg's forward (tested bit for bit):

- ``qkv``: mmseg reshapes its output as (3, heads, head_dim), so its rows
  are sliced per q/k/v block and per head:
  ``W.view(3, H, d, C)[:, :h].reshape(3 * h * d, C)`` (not the first
  ``3 * h * d`` rows, which would mix q with k);
- the relative-position-bias table by its head columns;
- ``proj`` by its input columns ``[:, :h * d]``;
- ``fc1`` by rows ``[:m]``, ``fc2`` by columns ``[:, :m]``.

The head dimension stays, so the attention scale stays; the embedding
widths stay, so LayerNorms, patch embedding and merging, the encoder's
outputs and Swin checkpoints are unchanged.

Convs (``SlimConvNorm``): a conv whose output width is a prefix of its
channels, followed by one norm layer per width (switchable BatchNorm,
Yu et al., "Slimmable Neural Networks", ICLR 2019).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer

from .block_runner import BlockRunner
from .swin_windows import HWShape, tokens_to_windows, windows_to_tokens


def head_dim(w_msa: nn.Module) -> int:
    """The head dimension of mmseg's ``WindowMSA`` (``qkv`` gives three
    ``num_heads x head_dim`` blocks; also for a physically narrow one,
    whose heads are fewer than its embedding width / head dimension)."""
    return w_msa.qkv.out_features // (3 * w_msa.num_heads)


def qkv_heads(w_msa: nn.Module, index) -> Tuple[torch.Tensor,
                                                Optional[torch.Tensor]]:
    """Weight and bias of ``w_msa.qkv`` restricted to the heads ``index``
    (a slice or an index tensor over the heads), in mmseg's (3, heads,
    head_dim) output layout: each head's q, k and v rows move
    together."""
    qkv = w_msa.qkv
    c = qkv.in_features
    total = w_msa.num_heads
    d = head_dim(w_msa)
    weight = qkv.weight.view(3, total, d, c)[:, index].reshape(-1, c)
    bias = None
    if qkv.bias is not None:
        bias = qkv.bias.view(3, total, d)[:, index].reshape(-1)
    return weight, bias


def qkv_rows(w_msa: nn.Module,
             heads: int) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Weight and bias of ``w_msa.qkv`` restricted to its first ``heads``
    heads (:func:`qkv_heads`)."""
    return qkv_heads(w_msa, slice(0, heads))


def slim_window_msa(w_msa: nn.Module, x: torch.Tensor,
                    mask: Optional[torch.Tensor], heads: int) -> torch.Tensor:
    """mmseg's ``WindowMSA.forward`` on the first ``heads`` heads; windows
    (nW*B, N, C) in and out."""
    b, n, c = x.shape
    d = head_dim(w_msa)
    weight, bias = qkv_rows(w_msa, heads)
    qkv = F.linear(x, weight, bias).reshape(b, n, 3, heads,
                                            d).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    q = q * w_msa.scale
    attn = q @ k.transpose(-2, -1)
    wh, ww = w_msa.window_size
    table = w_msa.relative_position_bias_table[:, :heads]
    bias_map = table[w_msa.relative_position_index.view(-1)].view(
        wh * ww, wh * ww, -1).permute(2, 0, 1).contiguous()
    attn = attn + bias_map.unsqueeze(0)
    if mask is not None:
        nw = mask.shape[0]
        attn = attn.view(b // nw, nw, heads, n, n) + \
            mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, heads, n, n)
    attn = w_msa.attn_drop(w_msa.softmax(attn))
    x = (attn @ v).transpose(1, 2).reshape(b, n, heads * d)
    proj = w_msa.proj
    x = F.linear(x, proj.weight[:, :heads * d], proj.bias)
    return w_msa.proj_drop(x)


def slim_attention(attn: nn.Module, x: torch.Tensor, hw_shape: HWShape,
                   heads: int) -> torch.Tensor:
    """mmseg's ``ShiftWindowMSA.forward`` (drop path included) on the first
    ``heads`` heads."""
    windows, mask = tokens_to_windows(attn, x, hw_shape)
    out = slim_window_msa(attn.w_msa, windows, mask, heads)
    return attn.drop(windows_to_tokens(attn, out, hw_shape))


def slim_mlp_delta(block: nn.Module, x: torch.Tensor,
                   hidden: int) -> torch.Tensor:
    """What a Swin block's MLP with its first ``hidden`` neurons adds to
    ``x`` (mmcv ``FFN``: fc1, act, dropout, fc2, dropout, drop path)."""
    ffn = block.ffn
    fc1, act, drop1 = ffn.layers[0]
    fc2, drop2 = ffn.layers[1], ffn.layers[2]
    h = drop1(act(F.linear(block.norm2(x), fc1.weight[:hidden],
                           None if fc1.bias is None else fc1.bias[:hidden])))
    out = drop2(F.linear(h, fc2.weight[:, :hidden], fc2.bias))
    return ffn.dropout_layer(ffn.gamma2(out))


def run_slim_block(block: nn.Module, x: torch.Tensor, hw_shape: HWShape,
                   heads: int, hidden: int) -> torch.Tensor:
    """mmseg's ``SwinBlock.forward`` with ``heads`` attention heads and
    ``hidden`` MLP neurons."""
    x = x + slim_attention(block.attn, block.norm1(x), hw_shape, heads)
    return x + slim_mlp_delta(block, x, hidden)


class SlimConvNorm(nn.Module):
    """Conv (no bias) + switchable norm + optional activation whose output
    channels are the prefix ``out_widths[i]`` of ``out_channels``.

    Args:
        in_channels: Largest input width.
        out_widths: Output width of each width index (increasing); the
            last is the conv's full output.
        kernel_size: Square kernel, padding keeps the size.
        in_groups: The input is the concatenation of ``in_groups`` equal
            parts each sliced to the same prefix (a fusion of several
            slimmed branches); 1 for a plain prefix.
        norm_cfg: Norm layer config (one per width); None for none.
        act_cfg: Activation config; None for none.
        bias: Conv bias (when there is no norm).
    """

    def __init__(self, in_channels: int, out_widths: Sequence[int],
                 kernel_size: int = 1, in_groups: int = 1,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='ReLU'),
                 bias: bool = False) -> None:
        super().__init__()
        self.out_widths = [int(w) for w in out_widths]
        self.in_groups = in_groups
        self.conv = nn.Conv2d(in_channels, self.out_widths[-1], kernel_size,
                              padding=kernel_size // 2, bias=bias)
        self.norms = None
        if norm_cfg is not None:
            self.norms = nn.ModuleList(
                build_norm_layer(norm_cfg, w)[1] for w in self.out_widths)
        self.act = None if act_cfg is None else build_activation_layer(
            act_cfg)

    def forward(self, x: torch.Tensor, index: int,
                out_width: Optional[int] = None) -> torch.Tensor:
        """At width index ``index`` (its norm); ``out_width`` overrides the
        output width (a fixed-width prediction layer)."""
        out = self.out_widths[index] if out_width is None else out_width
        weight = self.conv.weight[:out]
        cin = x.shape[1]
        if self.in_groups > 1:
            full = self.conv.in_channels // self.in_groups
            part = cin // self.in_groups
            weight = weight.view(out, self.in_groups, full,
                                 *weight.shape[2:])[:, :, :part].reshape(
                                     out, cin, *weight.shape[2:])
        else:
            weight = weight[:, :cin]
        bias = None if self.conv.bias is None else self.conv.bias[:out]
        y = F.conv2d(x, weight, bias, padding=self.conv.padding)
        if self.norms is not None:
            y = self.norms[index](y)
        return y if self.act is None else self.act(y)


class SlimRunner(BlockRunner):
    """Runs every block of stage ``i`` with ``widths[i] = (heads, hidden)``
    (``run_slim_block``)."""

    def __init__(self, widths: Sequence[Tuple[int, int]]) -> None:
        self.widths = list(widths)

    def run_block(self, stage, index, block, x, hw_shape):
        heads, hidden = self.widths[stage]
        return run_slim_block(block, x, hw_shape, heads, hidden)
