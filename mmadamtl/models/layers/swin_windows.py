"""mmseg's ``ShiftWindowMSA`` around its window attention, as two steps.

``ShiftWindowMSA.forward`` pads, shifts and partitions the tokens into
windows, runs ``w_msa`` on them and undoes the partition, shift and
padding. Methods that run their own window attention (MTLoRA's task
streams, slimmable widths) call these two steps instead, with the same
operations as mmseg's, so that their full configuration stays bit-equal
to mmseg's forward.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

HWShape = Tuple[int, int]


def shift_mask(attn: nn.Module, hw_shape: HWShape,
               device=None) -> Optional[torch.Tensor]:
    """The attention mask (nW, ws*ws, ws*ws) of ``attn``'s shifted
    windows on a ``hw_shape`` map (mmseg's), None without a shift. It
    depends on the sizes only: a runner that computes it once per stage
    keeps the mask's construction (index assignments of constants) out of
    the blocks' graphs."""
    h, w = hw_shape
    ws, shift = attn.window_size, attn.shift_size
    if shift <= 0:
        return None
    h_pad = h + (ws - h % ws) % ws
    w_pad = w + (ws - w % ws) % ws
    img_mask = torch.zeros((1, h_pad, w_pad, 1), device=device)
    cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    cnt = 0
    for hs in cuts:
        for wsl in cuts:
            img_mask[:, hs, wsl, :] = cnt
            cnt += 1
    mask_windows = attn.window_partition(img_mask).view(-1, ws * ws)
    mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
    return mask.masked_fill(mask != 0, float(-100.0)).masked_fill(
        mask == 0, float(0.0))


def partition_tokens(attn: nn.Module, x: torch.Tensor,
                     hw_shape: HWShape) -> torch.Tensor:
    """mmseg's ``ShiftWindowMSA`` steps before its window attention: pad,
    shift, partition; (B, H*W, C) -> windows (nW*B, ws*ws, C)."""
    b, n, c = x.shape
    h, w = hw_shape
    if n != h * w:
        raise ValueError(f'{n} tokens for a {h}x{w} map')
    ws, shift = attn.window_size, attn.shift_size
    x = x.view(b, h, w, c)
    pad_r = (ws - w % ws) % ws
    pad_b = (ws - h % ws) % ws
    x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    if shift > 0:
        x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
    return attn.window_partition(x).view(-1, ws * ws, c)


def tokens_to_windows(attn: nn.Module, x: torch.Tensor, hw_shape: HWShape
                      ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(B, H*W, C) -> windows (nW*B, ws*ws, C) and the shifted windows'
    attention mask (nW, ws*ws, ws*ws), None without a shift."""
    return partition_tokens(attn, x, hw_shape), \
        shift_mask(attn, hw_shape, x.device)


def windows_to_tokens(attn: nn.Module, windows: torch.Tensor,
                      hw_shape: HWShape) -> torch.Tensor:
    """mmseg's ``ShiftWindowMSA`` steps after its window attention: window
    merge, reverse shift, crop; (nW*B, ws*ws, C) -> (B, H*W, C)."""
    h, w = hw_shape
    ws = attn.window_size
    c = windows.shape[-1]
    h_pad = h + (ws - h % ws) % ws
    w_pad = w + (ws - w % ws) % ws
    x = attn.window_reverse(windows.view(-1, ws, ws, c), h_pad, w_pad)
    if attn.shift_size > 0:
        x = torch.roll(x, shifts=(attn.shift_size, attn.shift_size),
                       dims=(1, 2))
    return x[:, :h, :w, :].reshape(x.shape[0], h * w, c)
