"""AdaMTL's task decoder with slimmable widths (switchable BatchNorm)."""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.models.utils import resize
from mmseg.registry import MODELS

from ..layers.slimmable import SlimConvNorm


def check_width_multipliers(widths: Sequence[float], channels: int,
                            where: str) -> List[float]:
    """Increasing multipliers in (0, 1] ending at 1.0, each giving a whole
    number of channels."""
    widths = [float(w) for w in widths]
    if not widths or widths[-1] != 1.0 or \
            any(not 0 < w <= 1 for w in widths) or \
            any(a >= b for a, b in zip(widths, widths[1:])):
        raise ValueError(f'{where}: width multipliers must increase within '
                         f'(0, 1] and end at 1.0, got {widths}')
    for w in widths:
        if abs(w * channels - round(w * channels)) > 1e-6:
            raise ValueError(f'{where}: width {w} of {channels} channels is '
                             f'not a whole number of channels')
    return widths


class SlimBasicBlock(nn.Module):
    """``BasicBlock`` of ``AdaMTLDecoder`` with slimmable output widths; a
    1x1 projection shortcut wherever the input width can differ from the
    output's (a fixed-width input)."""

    def __init__(self, in_channels: int, widths: Sequence[int],
                 norm_cfg: dict, fixed_input: bool) -> None:
        super().__init__()
        self.conv1 = SlimConvNorm(in_channels, widths, 3, norm_cfg=norm_cfg)
        self.conv2 = SlimConvNorm(widths[-1], widths, 3, norm_cfg=norm_cfg,
                                  act_cfg=None)
        needs_projection = in_channels != widths[-1] or (
            fixed_input and any(w != in_channels for w in widths))
        self.shortcut = SlimConvNorm(
            in_channels, widths, 1, norm_cfg=norm_cfg,
            act_cfg=None) if needs_projection else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, index: int) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x, index)
        return self.relu(self.conv2(self.conv1(x, index), index) + identity)


@MODELS.register_module()
class SlimmableAdaMTLDecoder(BaseModule):
    """``AdaMTLDecoder`` (per scale two basic blocks, upsample, concatenate,
    1x1 fuse, 1x1 prediction) whose width is one of ``widths`` x
    ``channels``, given to each forward (``forward(inputs, width)``; None:
    the widest). The decoder keeps no width of its own.

    Every conv is a prefix slice of the widest one's weights; every width
    has its own BatchNorms (switchable BN) and its own 1x1 prediction
    layer (``out_channels`` outputs at every width), whose input is scaled
    by ``channels / width channels``. At width 1.0 it
    computes what an
    ``AdaMTLDecoder`` of ``channels`` with the same weights computes.

    Args:
        in_channels: Channels of each input scale (the encoder's, fixed).
        out_channels: Channels of the task output.
        channels: Widest branch width.
        widths: Width multipliers, increasing, ending at 1.0.
        norm_cfg: Norm layer config (one set per width).
        align_corners: ``align_corners`` of the upsampling.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: int,
                 channels: int = 64,
                 widths: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
                 norm_cfg: dict = dict(type='BN'),
                 align_corners: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.widths = check_width_multipliers(widths, channels,
                                              'SlimmableAdaMTLDecoder.widths')
        self.channels_at = [int(round(w * channels)) for w in self.widths]
        self.align_corners = align_corners
        self.branches = nn.ModuleList(
            nn.ModuleList([
                SlimBasicBlock(c, self.channels_at, norm_cfg, True),
                SlimBasicBlock(channels, self.channels_at, norm_cfg, False)
            ]) for c in in_channels)
        self.fuse = SlimConvNorm(channels * len(in_channels),
                                 self.channels_at, 1,
                                 in_groups=len(in_channels),
                                 norm_cfg=norm_cfg)
        # One prediction layer per width (like the switchable BNs), its
        # input scaled by channels / width: a narrow decoder then reaches
        # the widest one's output scale (depth ~10 units) with as few
        # optimizer steps; without it, 800 iterations left the narrow
        # depth decoders at a third of the scale (RMSE 6.6 vs 1.1).
        self.cls = nn.ModuleList(
            nn.Conv2d(c, out_channels, 1) for c in self.channels_at)
        self.cls_scale = [channels / c for c in self.channels_at]

    def width_index(self, width: Optional[float]) -> int:
        """The index of multiplier ``width`` (one of ``widths``; None: the
        widest)."""
        if width is None:
            return len(self.widths) - 1
        if float(width) not in self.widths:
            raise ValueError(f'decoder width {width!r} is not one of '
                             f'{self.widths}')
        return self.widths.index(float(width))

    def forward(self, inputs: List[torch.Tensor],
                width: Optional[float] = None) -> torch.Tensor:
        """The task output at multiplier ``width`` (None: the widest)."""
        i = self.width_index(width)
        size = inputs[0].shape[2:]
        outs = []
        for blocks, x in zip(self.branches, inputs):
            for block in blocks:
                x = block(x, i)
            outs.append(resize(x, size=size, mode='bilinear',
                               align_corners=self.align_corners))
        x = self.fuse(torch.cat(outs, dim=1), i)
        if self.cls_scale[i] != 1:
            x = x * self.cls_scale[i]
        return self.cls[i](x)


@torch.no_grad()
def fill_narrow_decoder(narrow: nn.Module, slim: SlimmableAdaMTLDecoder,
                        width: float) -> None:
    """Copy into ``narrow`` what ``slim`` runs at ``width``: ``narrow`` is
    an ``AdaMTLDecoder`` of ``channels`` = ``slim``'s width channels and
    ``project_inputs=True``; its convs get the prefix slices, its norms
    the width's switchable norms, its prediction layer the width's with
    its input scale folded into the weights. It then computes what
    ``slim(inputs, width)`` computes.

    Raises:
        ValueError: ``narrow`` does not have ``slim``'s layout at
            ``width``.
    """
    i = slim.width_index(width)
    out = slim.channels_at[i]
    if narrow.cls.in_channels != out:
        raise ValueError(f'narrow decoder has {narrow.cls.in_channels} '
                         f'channels, width {width} needs {out}')

    def copy(dst, src: SlimConvNorm, groups: int = 1) -> None:
        weight = src.conv.weight[:out]
        if groups > 1:
            part = dst.conv.in_channels // groups
            weight = weight.view(out, groups, -1, *weight.shape[2:])[
                :, :, :part].reshape(out, groups * part, *weight.shape[2:])
        else:
            weight = weight[:, :dst.conv.in_channels]
        if dst.conv.weight.shape != weight.shape:
            raise ValueError(f'narrow decoder: conv of shape '
                             f'{tuple(dst.conv.weight.shape)}, the slice is '
                             f'{tuple(weight.shape)}')
        dst.conv.weight.copy_(weight)
        dst.norm.load_state_dict(src.norms[i].state_dict())

    for narrow_branch, slim_branch in zip(narrow.branches, slim.branches):
        for dst, src in zip(narrow_branch, slim_branch):
            copy(dst.conv1, src.conv1)
            copy(dst.conv2, src.conv2)
            if (dst.shortcut is None) != (src.shortcut is None):
                raise ValueError('narrow decoder: shortcut projections differ '
                                 'from the slimmable decoder\'s (build it '
                                 'with project_inputs=True)')
            if src.shortcut is not None:
                copy(dst.shortcut, src.shortcut)
    copy(narrow.fuse, slim.fuse, slim.fuse.in_groups)
    narrow.cls.weight.copy_(slim.cls[i].weight * slim.cls_scale[i])
    narrow.cls.bias.copy_(slim.cls[i].bias)
