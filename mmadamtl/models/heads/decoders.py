"""Per-task dense decoders on the four Swin stage outputs."""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmseg.models.utils import resize
from mmseg.registry import MODELS


class BasicBlock(nn.Module):
    """ResNet basic block; a 1x1 projection matches the shortcut's width
    (``project``: also where the widths are equal)."""

    def __init__(self, in_channels: int, channels: int, norm_cfg: dict,
                 project: bool = False):
        super().__init__()
        self.conv1 = ConvModule(in_channels, channels, 3, padding=1,
                                bias=False, norm_cfg=norm_cfg)
        self.conv2 = ConvModule(channels, channels, 3, padding=1, bias=False,
                                norm_cfg=norm_cfg, act_cfg=None)
        self.shortcut = None
        if in_channels != channels or project:
            self.shortcut = ConvModule(in_channels, channels, 1, bias=False,
                                       norm_cfg=norm_cfg, act_cfg=None)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.relu(self.conv2(self.conv1(x)) + identity)


@MODELS.register_module()
class AdaMTLDecoder(BaseModule):
    """AdaMTL's task decoder: per scale two basic blocks to ``channels``,
    upsample to the finest scale, concatenate, 1x1 conv + BN + ReLU, 1x1
    conv to ``out_channels``. Output at the finest feature resolution.

    Args:
        in_channels: Channels of each input scale.
        out_channels: Channels of the task output.
        channels: Width of every scale's branch (64 in AdaMTL).
        norm_cfg: Norm layer config.
        align_corners: ``align_corners`` of the upsampling.
        project_inputs: A 1x1 projection on each scale's first shortcut
            even where its input already has ``channels`` (a decoder cut
            from a ``SlimmableAdaMTLDecoder``, whose first shortcut always
            projects).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: int,
                 channels: int = 64,
                 norm_cfg: dict = dict(type='BN'),
                 align_corners: bool = False,
                 project_inputs: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.align_corners = align_corners
        self.branches = nn.ModuleList(
            nn.Sequential(
                BasicBlock(c, channels, norm_cfg, project_inputs),
                BasicBlock(channels, channels, norm_cfg))
            for c in in_channels)
        self.fuse = ConvModule(channels * len(in_channels), channels, 1,
                               norm_cfg=norm_cfg)
        self.cls = nn.Conv2d(channels, out_channels, 1)

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        size = inputs[0].shape[2:]
        outs = [
            resize(branch(x), size=size, mode='bilinear',
                   align_corners=self.align_corners)
            for branch, x in zip(self.branches, inputs)
        ]
        return self.cls(self.fuse(torch.cat(outs, dim=1)))


@MODELS.register_module()
class HRFusionDecoder(BaseModule):
    """MTLoRA's HRNet-style task head: per scale a bias-free 1x1 conv to
    ``fuse_channels[i]``, upsample to the finest input scale, concatenate,
    1x1 conv to ``hidden_channels`` (4x the concatenation by default) + BN
    + ReLU, 1x1 conv to ``out_channels``.

    MTLoRA upsamples to 1/8 because its first fused map is at 1/8; here the
    finest map given is used (1/4 for mmseg's Swin outputs).

    Args:
        in_channels: Channels of each input scale.
        out_channels: Channels of the task output.
        fuse_channels: Width of each scale after the 1x1 projection.
        hidden_channels: Width of the fused layer; None means
            ``4 * sum(fuse_channels)`` (1080 in MTLoRA).
        norm_cfg: Norm layer config.
        align_corners: ``align_corners`` of the upsampling.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: int,
                 fuse_channels: Sequence[int] = (18, 36, 72, 144),
                 hidden_channels: Optional[int] = None,
                 norm_cfg: dict = dict(type='BN'),
                 align_corners: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(fuse_channels) != len(in_channels):
            raise ValueError(
                f'fuse_channels {tuple(fuse_channels)} must have one entry '
                f'per input scale {tuple(in_channels)}')
        self.align_corners = align_corners
        self.projections = nn.ModuleList(
            nn.Conv2d(c, f, 1, bias=False)
            for c, f in zip(in_channels, fuse_channels))
        total = sum(fuse_channels)
        hidden = hidden_channels or 4 * total
        self.fuse = ConvModule(total, hidden, 1, norm_cfg=norm_cfg)
        self.cls = nn.Conv2d(hidden, out_channels, 1)

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        size = inputs[0].shape[2:]
        outs = [
            resize(proj(x), size=size, mode='bilinear',
                   align_corners=self.align_corners)
            for proj, x in zip(self.projections, inputs)
        ]
        return self.cls(self.fuse(torch.cat(outs, dim=1)))
