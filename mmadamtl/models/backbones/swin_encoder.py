"""The package's Swin encoder: mmseg's modules and keys, our stage loop."""
import warnings
from typing import Dict, Sequence, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmseg.models.backbones import SwinTransformer
from mmseg.registry import MODELS

from ..layers.block_runner import BlockRunner, FullRunner
from ..utils.swin_cost import SwinCost, swin_cost
from .encoder import NO_CONTROL, Control, MultiTaskEncoder, constant_stats
from .swin_checkpoint import TAP_NORM

_FULL = FullRunner()


@MODELS.register_module()
class SwinEncoder(MultiTaskEncoder, SwinTransformer):
    """mmseg's ``SwinTransformer`` whose stage loop asks a
    :class:`~mmadamtl.models.layers.BlockRunner` how to run each block,
    and the static encoder of the contract (:class:`MultiTaskEncoder`:
    ``encode(x, control)`` returns the features and what each image
    executed; it honours no control field).

    It takes every argument of mmseg's Swin and keeps its modules and
    state-dict keys, so mmseg and converted Swin checkpoints load
    unchanged. With :class:`FullRunner` (the static encoder's) the loop is
    mmseg's ``SwinTransformer.forward`` operation for operation (tested
    bit for bit). The methods of the package differ only in the runner
    their ``encode`` passes:

    ``run_stages(x, runner)``::

        x, hw = runner.embed(encoder, x)       # encoder.embed(x)
        for stage i:
            runner.start_stage(i, x, hw)
            for block j: x = runner.run_block(i, j, block, x, hw)
            runner.end_stage(i, x, hw)
            x, hw, out = runner.leave_stage(encoder, i, x, hw)
            if out is not None: outs.append(out)
        return runner.finish(outs)

    where ``embed`` is the patch embedding (+ abs. pos. embed, dropout)
    and ``leave_stage`` the stage's patch merging and its tapped output
    (``runner.stage_output``); a runner replaces them only to run the same
    operations otherwise (AdaMTL's captured mode compiles them).

    Args:
        out_after_downsample: Tap each stage after its patch merging, as
            the official AdaMTL/MTLoRA code does (Swin-T: 192/384/768/768
            channels at 1/8, 1/16, 1/32, 1/32), instead of before it
            (mmseg: 96/192/384/768 at 1/4 to 1/32). The output norms
            ``norm<i>`` then have the tapped widths. Decoders need
            ``in_channels=encoder.tap_dims``.
        Others: mmseg's ``SwinTransformer``'s.
    """

    def __init__(self, *args, out_after_downsample: bool = False,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.out_after_downsample = out_after_downsample
        dims = list(self.num_features)
        self.tap_dims = dims
        if out_after_downsample:
            self.tap_dims = [
                dims[i + 1] if self.stages[i].downsample is not None else
                dims[i] for i in range(len(dims))
            ]
            norm_cfg = kwargs.get('norm_cfg', dict(type='LN'))
            for i in self.out_indices:
                self.add_module(f'norm{i}',
                                build_norm_layer(norm_cfg,
                                                 self.tap_dims[i])[1])
        self._costs: Dict[Tuple[int, int], SwinCost] = {}

    def load_state_dict(self, state_dict, strict: bool = True, **kwargs):
        """As ``nn.Module``'s; a non-strict load (mmseg's ``Pretrained``
        init) into taps after the patch mergings leaves out tap norms of
        another width (a checkpoint tapped before them, e.g. a static
        multi-task model's): they stay at their initialisation, with a
        warning."""
        if not strict and self.out_after_downsample:
            own = self.state_dict()
            skipped = [k for k, v in state_dict.items()
                       if TAP_NORM.match(k) and k in own
                       and own[k].shape != v.shape]
            if skipped:
                warnings.warn(f'{type(self).__name__}: tap norms of another '
                              f'width not loaded: {skipped}')
                state_dict = {k: v for k, v in state_dict.items()
                              if k not in skipped}
        return super().load_state_dict(state_dict, strict=strict, **kwargs)

    def cost(self, img_hw: Sequence[int]) -> SwinCost:
        """Per-image multiply-adds (closed form, ``swin_cost``) of the full
        encoder for an input of size ``img_hw``, computed once per
        size."""
        key = (int(img_hw[0]), int(img_hw[1]))
        if key not in self._costs:
            self._costs[key] = swin_cost(self, key)
        return self._costs[key]

    def encode(self, x: torch.Tensor, control: Control = NO_CONTROL):
        """Every block in full: mmseg's forward, and the full cost for
        every image."""
        self.check_control(control)
        outs = self.run_stages(x, _FULL)
        return outs, constant_stats(
            self.cost(x.shape[2:]).total, x.shape[0], x.device)

    def run_stages(self, x: torch.Tensor, runner: BlockRunner):
        """The stage loop (see the class), each block run by
        ``runner``."""
        x, hw_shape = runner.embed(self, x)
        outs = []
        for i, stage in enumerate(self.stages):
            runner.start_stage(i, x, hw_shape)
            for j, block in enumerate(stage.blocks):
                x = runner.run_block(i, j, block, x, hw_shape)
            runner.end_stage(i, x, hw_shape)
            x, hw_shape, out = runner.leave_stage(self, i, x, hw_shape)
            if out is not None:
                outs.append(out)
        return runner.finish(outs)

    def embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, tuple]:
        """The tokens (B, L, C) of the images and their map's size: the
        patch embedding, the absolute position embedding if any, and its
        dropout."""
        x, hw_shape = self.patch_embed(x)
        if self.use_abs_pos_embed:
            x = x + self.absolute_pos_embed
        return self.drop_after_pos(x), hw_shape

    def leave_stage(self, stage: int, x: torch.Tensor, hw_shape,
                    runner: BlockRunner) -> tuple:
        """After the blocks of ``stage``: its patch merging and its tapped
        output (``runner.stage_output``; None if not tapped). Returns the
        next stage's tokens, their map's size and the output."""
        out, out_hw_shape = x, hw_shape
        downsample = self.stages[stage].downsample
        if downsample is not None:
            x, hw_shape = downsample(x, hw_shape)
        if self.out_after_downsample:
            out, out_hw_shape = x, hw_shape
        if stage not in self.out_indices:
            return x, hw_shape, None
        return x, hw_shape, runner.stage_output(
            stage, out, out_hw_shape, getattr(self, f'norm{stage}'),
            self.tap_dims[stage])
