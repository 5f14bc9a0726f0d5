"""MTLoRA's block runner: one residual stream per task through the last
block of each stage (the task-specific adapters)."""
from typing import Dict, Sequence

import torch
import torch.nn as nn

from .block_runner import BlockRunner, HWShape
from .swin_windows import windows_to_tokens


class MTLoRARunner(BlockRunner):
    """Runs the last block of each stage with one residual stream per task
    (MTLoRA's task-specific adapters) and returns per-task taps.

    The shared stream runs mmseg's block forward step by step (TA-LoRA
    included, the same operations as ``block(x)``), keeping the inputs
    and base outputs ``W x + b`` of ``proj``, ``fc1`` and ``fc2``. Each
    task then adds its pair's output to the base output of the shared
    stream, on its own stream's input::

        proj_t = W_proj a + b + s B_t A_t a        (a: shared attention)
        t1     = x + drop_path(proj_t)
        fc1_t  = W_1 norm2(x_mid) + b_1 + s B_t A_t norm2(t1)
        fc2_t  = W_2 h + b_2 + s B_t A_t act(fc1_t)  (h: shared hidden)
        out_t  = t1 + drop_path(fc2_t)

    (a layer without a task pair passes the shared output on). A task's
    tap is its stream after the stage's patch merging (or before it, as
    the encoder's taps are). Tasks without pairs get the shared taps.
    """

    def __init__(self, encoder: nn.Module, tasks: Sequence[str]) -> None:
        """``encoder``: the ``MTLoRASwinTransformer``; ``tasks``: the
        streams to run."""
        self.encoder = encoder
        self.tasks = list(tasks)
        self.streams = [t for t in self.tasks if t in encoder.lora_tasks]
        self._task_out: Dict[str, torch.Tensor] = {}
        self._hw: HWShape = (0, 0)

    def run_block(self, stage, index, block, x, hw_shape):
        stages = self.encoder.stages
        if index < len(stages[stage].blocks) - 1 or not self.streams:
            return block(x, hw_shape)
        # mmseg's SwinBlock forward, step by step, keeping the shared
        # base outputs; the shared output is skipped where nothing reads
        # it (after the last stage, when every task has its own stream).
        need_shared = stage < len(stages) - 1 or \
            stages[stage].downsample is not None or \
            len(self.streams) < len(self.tasks)
        attn, ffn = block.attn, block.ffn
        proj = attn.w_msa.proj
        fc1, act, drop1 = ffn.layers[0]
        fc2 = ffn.layers[1]
        # proj runs inside mmseg's window attention: record its input
        # (in windows) and base output there.
        proj.record = True
        try:
            shared_attn = attn(block.norm1(x), hw_shape)
            a, proj_base = proj.recorded
        finally:
            proj.record, proj.recorded = False, None
        x_mid = shared_attn + x
        n = block.norm2(x_mid)
        fc1_base = fc1.base(n)
        hidden = drop1(act(fc1.with_shared(n, fc1_base)))
        fc2_base = fc2.base(hidden)
        out = None
        if need_shared:
            out = x_mid + ffn.dropout_layer(ffn.gamma2(ffn.layers[2](
                fc2.with_shared(hidden, fc2_base))))
        self._task_out = {}
        for task in self.streams:
            p = proj_base
            if task in proj.task_A:
                p = p + proj.task_delta(task, a)
            p = attn.w_msa.proj_drop(p)
            t1 = x + attn.drop(windows_to_tokens(attn, p, hw_shape))
            h = hidden
            if task in fc1.task_A:
                h = drop1(act(fc1_base +
                              fc1.task_delta(task, block.norm2(t1))))
            f2 = fc2_base
            if task in fc2.task_A:
                f2 = f2 + fc2.task_delta(task, h)
            y = ffn.dropout_layer(ffn.gamma2(ffn.layers[2](f2)))
            self._task_out[task] = t1 + y
        return out

    def stage_output(self, stage, x, hw_shape, norm, dims):
        encoder = self.encoder
        taps = {}
        shared = None
        for task in self.tasks:
            if task in self._task_out:
                t, hw = self._task_out[task], self._hw
                down = encoder.stages[stage].downsample
                if encoder.out_after_downsample and down is not None:
                    t, hw = down(t, hw)
                taps[task] = super().stage_output(stage, t, hw, norm, dims)
            else:
                if shared is None:
                    shared = super().stage_output(stage, x, hw_shape, norm,
                                                  dims)
                taps[task] = shared
        return taps

    def start_stage(self, stage, x, hw_shape) -> None:
        self._hw = hw_shape
        self._task_out = {}

    def finish(self, outs: list):
        return {task: [o[task] for o in outs] for task in self.tasks}
