"""How the Swin stage loop runs each block: the runner interface.

:class:`~mmadamtl.models.backbones.SwinEncoder` owns the one stage loop of
the package; it asks a :class:`BlockRunner` to run every block
(``run_block``), to turn every tapped stage into an output
(``stage_output``) and to make the encoder's result (``finish``). Here:
the interface and :class:`FullRunner` (every block in full, the static
path). Each method's runners live in a file of their own:

- AdaMTL: ``adamtl_runners.py`` (``BlendRunner`` in training,
  ``SkipRunner`` in inference);
- MTLoRA: ``mtlora_runner.py`` (``MTLoRARunner``: a residual stream per
  task through the last block of each stage);
- controllable widths: ``slimmable.py`` (``SlimRunner``: each block
  through a width-sliced view of its weights);
- measuring: ``profiling.py`` (timed, recording and replay runners).
"""
import torch
import torch.nn as nn

from .swin_windows import HWShape, partition_tokens, windows_to_tokens


# ``attention_residual``'s default: mmseg's ShiftWindowMSA builds its mask.
OWN_MASK = object()


def attention_residual(block: nn.Module, x: torch.Tensor,
                       hw_shape: HWShape, mask=OWN_MASK) -> torch.Tensor:
    """``x + attn(norm1(x))``: a Swin block up to its MLP. ``mask``: the
    block's shifted-window mask computed beforehand (``shift_mask``; None
    for an unshifted block) instead of by mmseg's ``ShiftWindowMSA`` on
    every call; the same operations otherwise."""
    if mask is OWN_MASK:
        return x + block.attn(block.norm1(x), hw_shape)
    attn = block.attn
    windows = partition_tokens(attn, block.norm1(x), hw_shape)
    out = attn.w_msa(windows, mask=mask)
    return x + attn.drop(windows_to_tokens(attn, out, hw_shape))


def mlp_delta(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What a Swin block's MLP adds to ``x``: the residual branch of mmcv's
    ``FFN`` on ``norm2(x)``."""
    ffn = block.ffn
    return ffn.dropout_layer(ffn.gamma2(ffn.layers(block.norm2(x))))


class BlockRunner:
    """The interface the stage loop calls; the defaults run every block in
    full and tap a stage through its output norm, as mmseg's Swin does."""

    def embed(self, encoder: nn.Module, x: torch.Tensor):
        """The images' tokens and their map's size
        (``encoder.embed(x)``)."""
        return encoder.embed(x)

    def start_stage(self, stage: int, x: torch.Tensor,
                    hw_shape: HWShape) -> None:
        """Called with a stage's input before its first block."""

    def run_block(self, stage: int, index: int, block: nn.Module,
                  x: torch.Tensor, hw_shape: HWShape) -> torch.Tensor:
        return block(x, hw_shape)

    def end_stage(self, stage: int, x: torch.Tensor,
                  hw_shape: HWShape) -> None:
        """Called with a stage's output, before its patch merging."""

    def stage_output(self, stage: int, x: torch.Tensor, hw_shape: HWShape,
                     norm: nn.Module, dims: int):
        """The tapped output of a stage: (B, C, H, W) after its norm."""
        out = norm(x).view(-1, *hw_shape, dims)
        return out.permute(0, 3, 1, 2).contiguous()

    def leave_stage(self, encoder: nn.Module, stage: int, x: torch.Tensor,
                    hw_shape: HWShape) -> tuple:
        """The patch merging and the tapped output of ``stage``
        (``encoder.leave_stage``, with this runner's
        :meth:`stage_output`)."""
        return encoder.leave_stage(stage, x, hw_shape, self)

    def finish(self, outs: list):
        """What the encoder returns, from the stage outputs."""
        return outs


class FullRunner(BlockRunner):
    """Every block in full: the static Swin."""
