"""How the Swin stage loop runs each block.

:class:`~mmadamtl.models.backbones.SwinEncoder` owns the one stage loop of
the package; it asks a :class:`BlockRunner` to run every block and to turn
every tapped stage into an output. The runners here:

- :class:`FullRunner`: every block in full (``block(x, hw_shape)``, mmseg's
  own block forward), the static path;
- :class:`BlendRunner`: AdaMTL training, every block computed for every
  image and blended with the policy's straight-through decisions;
- :class:`SkipRunner`: AdaMTL inference, a block runs only on the images
  that keep it and its MLP only on their selected tokens.

Further methods plug in here without copying the loop: MTLoRA's runner
forks a residual stream per task in the last block of each stage
(``run_block``) and returns per-task taps (``stage_output``, ``finish``);
a slimmable-width runner runs each block through a width-sliced view of
its weights (``run_block``).
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn

HWShape = Tuple[int, int]


def attention_residual(block: nn.Module, x: torch.Tensor,
                       hw_shape: HWShape) -> torch.Tensor:
    """``x + attn(norm1(x))``: a Swin block up to its MLP."""
    return x + block.attn(block.norm1(x), hw_shape)


def mlp_delta(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What a Swin block's MLP adds to ``x``: the residual branch of mmcv's
    ``FFN`` on ``norm2(x)``."""
    ffn = block.ffn
    return ffn.dropout_layer(ffn.gamma2(ffn.layers(block.norm2(x))))


def mlp_on_tokens(block: nn.Module, y: torch.Tensor,
                  selected: torch.Tensor) -> torch.Tensor:
    """Add the MLP to the rows of ``y`` (B, L, C) where ``selected`` (B, L)
    is 1: the selected tokens of every image are gathered into one matrix,
    run, and added back in place (``y`` must be the caller's own fresh
    tensor)."""
    flat = y.view(-1, y.shape[-1])
    rows = selected.view(-1).nonzero().squeeze(1)
    if rows.numel() == flat.shape[0]:
        return y + mlp_delta(block, y)
    if rows.numel():
        delta = mlp_delta(block, flat.index_select(0, rows))
        flat.index_add_(0, rows, delta.to(flat.dtype))
    return y


class BlockRunner:
    """The interface the stage loop calls; the defaults run every block in
    full and tap a stage through its output norm, as mmseg's Swin does."""

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

    def finish(self, outs: list):
        """What the encoder returns, from the stage outputs."""
        return outs


class FullRunner(BlockRunner):
    """Every block in full: the static Swin."""


class PolicyRunner(BlockRunner):
    """Runs blocks by the decisions of an AdaMTL ``PolicyHead``.

    Records per block the executed decisions the FLOPs accounting reads
    (``keeps``: (B, depth) per stage; ``tokens``: (B, L) MLP decisions per
    block, zero where the block was skipped; ``token_maps``: per stage the
    share of its blocks that ran each token's MLP, (B, h, w)). A kept
    block none of whose tokens is selected is skipped whole, attention
    included (as the official code does), and recorded as skipped.

    Args:
        policy: The ``PolicyHead``.
        budget: (B,) budget input of the policy per image.
        index: The policy's output columns of the tasks being run.
    """

    def __init__(self, policy: nn.Module, budget: torch.Tensor,
                 index: Sequence[int]) -> None:
        self.policy = policy
        self.budget = budget
        self.index = list(index)
        self.keeps: List[torch.Tensor] = []
        self.tokens: List[torch.Tensor] = []
        self.token_maps: List[torch.Tensor] = []
        self._stage_keep: List[torch.Tensor] = []
        self._stage_tokens: List[torch.Tensor] = []

    def start_stage(self, stage, x, hw_shape) -> None:
        self._planned = self.policy.block_decisions(stage, x, hw_shape,
                                                    self.budget, self.index)
        self._stage_keep, self._stage_tokens = [], []

    def run_block(self, stage, index, block, x, hw_shape):
        x, keep, tokens = self._run(stage, index, block, x, hw_shape,
                                    self._planned[:, index])
        self._stage_keep.append(keep)
        self._stage_tokens.append(tokens)
        self.tokens.append(tokens)
        return x

    def end_stage(self, stage, x, hw_shape) -> None:
        self.keeps.append(torch.stack(self._stage_keep, 1))
        maps = torch.stack(self._stage_tokens).detach().float().mean(0)
        self.token_maps.append(maps.view(x.shape[0], *hw_shape))

    def _run(self, stage: int, index: int, block: nn.Module,
             x: torch.Tensor, hw_shape: HWShape, keep: torch.Tensor
             ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run one block; returns the output, the executed keep decision
        (B,) and the executed token decisions (B, L)."""
        raise NotImplementedError


def any_selected(tokens: torch.Tensor) -> torch.Tensor:
    """(B,) 1 where an image selected at least one token: the max over
    the (0/1, straight-through) decisions, so the gradient reaches the
    token that decides it."""
    return tokens.amax(dim=1)


class BlendRunner(PolicyRunner):
    """Training: run the block for every image and blend with the
    (straight-through) decisions, ``x + m (f(x) - x)``; saves no compute,
    lets gradients reach the policy.

    Also records the noise-free decisions (``det_keeps``, ``det_tokens``:
    what inference would run, with gradients) for the budget loss's
    deterministic term.
    """

    def __init__(self, policy, budget, index) -> None:
        super().__init__(policy, budget, index)
        self.det_keeps: List[torch.Tensor] = []
        self.det_tokens: List[torch.Tensor] = []

    def start_stage(self, stage, x, hw_shape) -> None:
        self._planned, self._det_planned = self.policy.block_decisions(
            stage, x, hw_shape, self.budget, self.index,
            with_deterministic=True)
        self._stage_keep, self._stage_tokens = [], []
        self._stage_det = []

    def end_stage(self, stage, x, hw_shape) -> None:
        super().end_stage(stage, x, hw_shape)
        self.det_keeps.append(torch.stack(self._stage_det, 1))

    def _run(self, stage, index, block, x, hw_shape, keep):
        tokens, det_tokens = self.policy.token_decisions(
            stage, index, x, self.budget, self.index,
            with_deterministic=True)
        det_keep = self._det_planned[:, index]
        y = attention_residual(block, x, hw_shape)
        delta = mlp_delta(block, y)
        if tokens is None:
            tokens = det_tokens = x.new_ones(x.shape[:2])
        else:
            keep = keep * any_selected(tokens)
            det_keep = det_keep * any_selected(det_tokens)
        y = y + delta * tokens.unsqueeze(-1)
        x = x + keep.view(-1, 1, 1) * (y - x)
        self._stage_det.append(det_keep)
        self.det_tokens.append(det_tokens * det_keep.unsqueeze(1))
        return x, keep, tokens * keep.unsqueeze(1)


class SkipRunner(PolicyRunner):
    """Inference: the block runs only on the images that keep it, and its
    MLP only on their selected tokens; skipped work is identity.

    With ``cap`` (``budget_mode='cap'``) the blocks of each stage are
    chosen under a per-image allowance of multiply-adds: among the blocks
    the policy keeps, in order of decreasing score, a block is kept if its
    full cost (attention, MLP on every token, its token selector) fits in
    what is left; token selection can then only lower the cost, so the
    executed compute never exceeds the allowance.

    Args:
        cap: None, or ``(allowance, costs)``: ``allowance`` (B,) the
            multiply-adds the blocks may use per image, ``costs`` per stage
            a list of each block's full cost.
    """

    def __init__(self, policy, budget, index, cap=None) -> None:
        super().__init__(policy, budget, index)
        self.cap = cap
        if cap is not None:
            self._left = cap[0].clone().double()

    def start_stage(self, stage, x, hw_shape) -> None:
        if self.cap is None:
            return super().start_stage(stage, x, hw_shape)
        scores = self.policy.block_scores(stage, x, hw_shape, self.budget,
                                          self.index)
        costs = scores.new_tensor(self.cap[1][stage], dtype=torch.float64)
        keep = torch.zeros_like(scores)
        for j in scores.argsort(dim=1, descending=True).unbind(1):
            rows = torch.arange(len(j), device=j.device)
            cost = costs[j]
            fits = (scores[rows, j] > 0) & (cost <= self._left)
            keep[rows[fits], j[fits]] = 1
            self._left = self._left - fits.double() * cost
        self._planned = keep
        self._stage_keep, self._stage_tokens = [], []

    def _run(self, stage, index, block, x, hw_shape, keep):
        batch, length, _ = x.shape
        tokens = x.new_zeros(batch, length)
        idx = keep.nonzero().squeeze(1)
        selected, sub = None, None
        if idx.numel():
            whole = idx.numel() == batch
            sub = x if whole else x.index_select(0, idx)
            sub_budget = self.budget if whole else \
                self.budget.index_select(0, idx)
            selected = self.policy.token_decisions(stage, index, sub,
                                                   sub_budget, self.index)
            if selected is not None:
                # Under autocast the decisions may come out in half
                # precision.
                selected = selected.to(x.dtype)
                ran = selected.any(dim=1)
                if not bool(ran.all()):
                    # No token selected: the block is skipped whole.
                    idx, selected, sub = idx[ran], selected[ran], sub[ran]
        executed = keep.new_zeros(batch)
        if idx.numel() == 0:
            return x, executed, tokens
        executed[idx] = 1
        whole = idx.numel() == batch
        y = attention_residual(block, sub, hw_shape)
        if selected is None:
            y = y + mlp_delta(block, y)
            selected = y.new_ones(y.shape[:2])
        else:
            y = mlp_on_tokens(block, y, selected)
        if whole:
            return y, executed, selected
        return (scatter_images(x, idx, y), executed,
                tokens.index_copy(0, idx, selected))


def scatter_images(x: torch.Tensor, idx: torch.Tensor,
                   y: torch.Tensor) -> torch.Tensor:
    """``x`` with the images ``idx`` replaced by ``y``. In inference ``x``
    (the previous block's output, used by nothing else) is written in place
    instead of copying the whole batch."""
    if torch.is_grad_enabled() and x.requires_grad:
        return x.index_copy(0, idx, y)
    return x.index_copy_(0, idx, y)
