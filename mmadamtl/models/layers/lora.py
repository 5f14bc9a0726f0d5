"""Low-rank adapters on a frozen linear layer (LoRA, and MTLoRA's
task-specific pairs)."""
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class LoRALinear(nn.Linear):
    """``nn.Linear`` plus a shared low-rank update and, optionally, one
    low-rank pair per task.

    ``forward(x) = W x + b + scale * B (A dropout(x))``: the base weight
    and bias keep the replaced layer's names (``weight``, ``bias``), so
    the state-dict keys of the model it lives in do not change; the
    adapters are ``lora_A`` (rank, in), ``lora_B`` (out, rank) and, per
    task, ``task_A.<task>``/``task_B.<task>``. A is Kaiming-uniform, B is
    zero, so a fresh adapter leaves the layer's output unchanged.

    The task pairs are read by :meth:`task_delta` (MTLoRA's task-specific
    streams); :meth:`merge` folds the shared pair into ``weight``.

    Args:
        in_features, out_features, bias: As ``nn.Linear``.
        rank: Rank of the shared pair; 0 for none.
        scale: Output scale of the shared pair (MTLoRA: a fixed 4.0,
            not alpha / rank).
        dropout: Dropout on the adapters' input.
        tasks: Tasks with a task-specific pair.
        task_rank: Rank of each task pair.
        task_scale: Output scale of the task pairs.
        task_dropout: Dropout on the task pairs' input too (False: the
            task pairs read their input as it is).
    """

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 bias: bool = True,
                 rank: int = 0,
                 scale: float = 4.0,
                 dropout: float = 0.0,
                 tasks: Sequence[str] = (),
                 task_rank: int = 0,
                 task_scale: float = 4.0,
                 task_dropout: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.rank = int(rank)
        self.scale = float(scale)
        self.task_rank = int(task_rank) if tasks else 0
        self.task_scale = float(task_scale)
        self.task_dropout = bool(task_dropout)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 \
            else nn.Identity()
        if self.rank > 0:
            self.lora_A = nn.Parameter(torch.empty(self.rank, in_features))
            self.lora_B = nn.Parameter(torch.zeros(out_features, self.rank))
        self.task_A = nn.ParameterDict()
        self.task_B = nn.ParameterDict()
        for task in (tasks if self.task_rank else ()):
            self.task_A[task] = nn.Parameter(
                torch.empty(self.task_rank, in_features))
            self.task_B[task] = nn.Parameter(
                torch.zeros(out_features, self.task_rank))
        # (input, W x + b) of the last forward, kept only while a caller
        # asks for it (MTLoRA's task streams reuse the base output of a
        # layer called deep inside mmseg's attention).
        self.record = False
        # Whether task streams fork from this layer (they read its base
        # output, so its shared pair must not be merged).
        self.forks = False
        self.recorded: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        self.reset_adapters()

    @classmethod
    def from_linear(cls, linear: nn.Linear, **kwargs) -> 'LoRALinear':
        """A ``LoRALinear`` that takes over ``linear``'s weight and bias
        (the same parameters, not copies)."""
        layer = cls(linear.in_features, linear.out_features,
                    bias=linear.bias is not None, **kwargs)
        layer.weight = linear.weight
        layer.bias = linear.bias
        return layer.to(linear.weight.device)

    def reset_adapters(self) -> None:
        """A Kaiming-uniform (as ``nn.Linear``'s default), B zero."""
        pairs = [(getattr(self, 'lora_A', None),
                  getattr(self, 'lora_B', None))]
        pairs += [(self.task_A[t], self.task_B[t]) for t in self.task_A]
        for a, b in pairs:
            if a is not None:
                nn.init.kaiming_uniform_(a, a=math.sqrt(5))
                nn.init.zeros_(b)

    def base(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen layer alone: ``W x + b``."""
        return F.linear(x, self.weight, self.bias)

    def with_shared(self, x: torch.Tensor,
                    base: torch.Tensor) -> torch.Tensor:
        """``base`` (this layer's ``W x + b``) plus the shared pair's
        ``scale * B A dropout(x)``; ``base`` itself without a pair."""
        if self.rank == 0:
            return base
        return base + self.scale * F.linear(
            F.linear(self.lora_dropout(x), self.lora_A), self.lora_B)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.record:
            self.recorded = (x, out)
        return self.with_shared(x, out)

    def task_delta(self, task: str, x: torch.Tensor) -> torch.Tensor:
        """``task_scale * B_t A_t dropout(x)``: what task ``task``'s pair
        adds to the shared base output (no dropout without
        ``task_dropout``)."""
        if self.task_dropout:
            x = self.lora_dropout(x)
        return self.task_scale * F.linear(
            F.linear(x, self.task_A[task]), self.task_B[task])

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the shared pair into the weight (``W += scale * B A``) and
        drop it; the forward then costs one plain linear layer. The task
        pairs stay."""
        if self.rank == 0:
            return
        delta = self.scale * (self.lora_B.float() @ self.lora_A.float())
        self.weight.add_(delta.to(self.weight.dtype))
        del self.lora_A, self.lora_B
        self.rank = 0

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, rank={self.rank}, '
                f'scale={self.scale}, tasks={list(self.task_A)}, '
                f'task_rank={self.task_rank}')
