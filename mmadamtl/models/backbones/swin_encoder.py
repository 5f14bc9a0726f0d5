"""The package's Swin encoder: mmseg's modules and keys, our stage loop."""
from typing import Optional

import torch
from mmseg.models.backbones import SwinTransformer

from ..layers.block_runners import BlockRunner, FullRunner

_FULL = FullRunner()


class SwinEncoder(SwinTransformer):
    """mmseg's ``SwinTransformer`` whose stage loop asks a
    :class:`~mmadamtl.models.layers.BlockRunner` how to run each block.

    It takes every argument of mmseg's Swin and keeps its modules and
    state-dict keys, so mmseg and converted Swin checkpoints load
    unchanged. With the default :class:`FullRunner` the forward is mmseg's
    ``SwinTransformer.forward`` operation for operation (tested bit for
    bit). The methods of the package differ only in the runner they pass:

    ``forward(x, runner)``::

        x = patch_embed(x) (+ abs. pos. embed, dropout)
        for stage i:
            runner.start_stage(i, x, hw)
            for block j: x = runner.run_block(i, j, block, x, hw)
            runner.end_stage(i, x, hw)
            out = x; x = patch merging(x)
            if i in out_indices: outs += runner.stage_output(i, out, ...)
        return runner.finish(outs)
    """

    def forward(self, x: torch.Tensor,
                runner: Optional[BlockRunner] = None):
        runner = _FULL if runner is None else runner
        x, hw_shape = self.patch_embed(x)
        if self.use_abs_pos_embed:
            x = x + self.absolute_pos_embed
        x = self.drop_after_pos(x)
        outs = []
        for i, stage in enumerate(self.stages):
            runner.start_stage(i, x, hw_shape)
            for j, block in enumerate(stage.blocks):
                x = runner.run_block(i, j, block, x, hw_shape)
            runner.end_stage(i, x, hw_shape)
            out, out_hw_shape = x, hw_shape
            if stage.downsample is not None:
                x, hw_shape = stage.downsample(x, hw_shape)
            if i in self.out_indices:
                outs.append(
                    runner.stage_output(i, out, out_hw_shape,
                                        getattr(self, f'norm{i}'),
                                        self.num_features[i]))
        return runner.finish(outs)
