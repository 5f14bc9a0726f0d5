"""AdaMTL's block runners: the stage loop run by a policy's decisions.

- :class:`BlendRunner`: training, every block computed for every image
  and blended with the policy's straight-through decisions;
- :class:`SkipRunner`: inference, a block runs only on the images that
  keep it and its MLP only on their selected tokens (gather, run,
  scatter), with at most one host read per stage and per block;
- :class:`CondRunner`: inference as one graph (``Control.graph``): the
  same decisions and work, each image's block decision a ``torch.cond``
  and its MLP tokens a gather of data-dependent size, no host read, so
  ``torch.export`` and the ONNX exporter (``If`` nodes) keep the
  skipping.
"""
import math
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn

from mmadamtl.utils.host_sync import tracing
from ..utils.compile import compiled_copy, strict_recompiles
from .block_runner import (BlockRunner, HWShape, attention_residual,
                           mlp_delta)
from .swin_windows import shift_mask


def to_host(t: torch.Tensor) -> list:
    """``t`` as (nested) Python lists: the one way the adaptive inference
    path reads values of the device on the host. On CUDA this waits for
    the queued work (a synchronisation), so ``SkipRunner`` reads once per
    stage (the block plan) and once per block some image plans to run
    (the token counts), and nothing else
    (``mmadamtl.utils.host_sync.SyncCounter`` counts them)."""
    return t.tolist()


def to_host_tensor(t: torch.Tensor) -> torch.Tensor:
    """``t`` copied to the host (itself on CPU): one synchronisation on
    CUDA, like :func:`to_host`."""
    return t.cpu()


def index_tensor(values: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """A host list of indices as a long tensor on ``like``'s device (a
    host-to-device copy, no synchronisation)."""
    out = torch.tensor(values, dtype=torch.long)
    if like.device.type != 'cpu':
        out = out.pin_memory().to(like.device, non_blocking=True)
    return out


def mlp_on_rows(block: nn.Module, y: torch.Tensor, selected: torch.Tensor,
                count: int) -> torch.Tensor:
    """Add the MLP to the ``count`` rows of ``y`` (B, L, C) where
    ``selected`` (B, L, 0/1 values) is nonzero, in place (``y`` must be the
    caller's own fresh tensor). The row indices come from
    ``nonzero_static`` with the count the caller read on the host, so
    finding them is no further synchronisation."""
    flat = y.view(-1, y.shape[-1])
    if count == flat.shape[0]:
        return y + mlp_delta(block, y)
    if count:
        rows = torch.nonzero_static(selected.reshape(-1), size=count)
        rows = rows.squeeze(1)
        sub = flat.index_select(0, rows)
        flat.index_copy_(0, rows, sub + mlp_delta(block, sub).to(sub.dtype))
    return y


class PolicyRunner(BlockRunner):
    """Runs blocks by the decisions of an AdaMTL ``PolicyHead``.

    After the forward, :meth:`executed` gives the executed decisions the
    FLOPs accounting reads, and ``token_maps`` per stage the share of its
    blocks that ran each token's MLP, (B, h, w). A kept block none of
    whose tokens is selected is skipped whole, attention included (as the
    official code does), and recorded as skipped.

    Args:
        policy: The ``PolicyHead``.
        budget: (B,) budget input of the policy per image, or its
            ``BudgetTerms`` (the policy's ``budget_terms``).
        index: The policy's output columns of the tasks being run.
    """

    def __init__(self, policy: nn.Module, budget: torch.Tensor,
                 index: Sequence[int]) -> None:
        self.policy = policy
        self.budget = budget
        self.index = list(index)
        self.token_maps: List[torch.Tensor] = []

    def executed(self) -> Tuple[torch.Tensor, torch.Tensor, list]:
        """After the forward: the (B, blocks) executed block decisions, the
        (B, blocks) MLP tokens run per block (zero where skipped), both
        float32, and ``token_maps``."""
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
        # Per stage (B, depth) decisions; per block (B, L) MLP decisions,
        # zero where the block was skipped.
        self.keeps: List[torch.Tensor] = []
        self.tokens: List[torch.Tensor] = []
        self.det_keeps: List[torch.Tensor] = []
        self.det_tokens: List[torch.Tensor] = []

    def start_stage(self, stage, x, hw_shape) -> None:
        self._planned, self._det_planned = self.policy.block_decisions(
            stage, x, hw_shape, self.budget, self.index,
            with_deterministic=True)
        self._stage_keep, self._stage_tokens = [], []
        self._stage_det = []

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
        self.det_keeps.append(torch.stack(self._stage_det, 1))

    def executed(self) -> Tuple[torch.Tensor, torch.Tensor, list]:
        # Cast before summing: a float16 sum of over 2048 ones is inexact.
        keep = torch.cat(self.keeps, 1).float()
        tokens = torch.stack([t.float().sum(1) for t in self.tokens], 1)
        return keep, tokens, self.token_maps

    def deterministic(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The noise-free decisions' (B, blocks) keeps and MLP tokens run
        per block, float32 with gradients (see ``BudgetLoss``)."""
        keep = torch.cat(self.det_keeps, 1).float()
        tokens = torch.stack([t.float().sum(1) for t in self.det_tokens], 1)
        return keep, tokens

    def _run(self, stage: int, index: int, block: nn.Module,
             x: torch.Tensor, hw_shape: HWShape, keep: torch.Tensor
             ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run one block for every image; returns the blended output, the
        executed keep decision (B,) and token decisions (B, L)."""
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

    Decisions are read on the host twice per stage at most:
    :meth:`start_stage` reads the stage's (B, depth) block plan once
    (``to_host``), so which images run which block is known on the host
    and a block nobody keeps costs nothing; each executed block with token
    selection reads its per-image counts of selected tokens once, which
    sizes the gather of the MLP rows (``nonzero_static``). On CUDA each
    read is a synchronisation: ``stages + planned blocks`` per forward
    whatever the batch size, plus one in :meth:`executed`, which brings
    the token maps to the host (``tests`` hold it to that). The executed
    figures are kept as host lists (``keep_rows``, ``token_counts``) and
    become tensors once, after the forward.

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
        # Per block, over the batch: executed (0/1) and MLP tokens run.
        self.keep_rows: List[List[int]] = []
        self.token_counts: List[List[int]] = []

    def start_stage(self, stage, x, hw_shape) -> None:
        if self.cap is None:
            planned = self._block_decisions(stage, x, hw_shape)
        else:
            planned = self._capped(stage, x, hw_shape)
        plan = to_host(planned)
        batch = x.shape[0]
        # Per block: the images that keep it.
        self._images = [[i for i in range(batch) if plan[i][j]]
                        for j in range(len(plan[0]))]
        # Float32 whatever the activations' dtype (autocast).
        self._map = x.new_zeros(x.shape[:2], dtype=torch.float32)

    def _block_decisions(self, stage, x, hw_shape) -> torch.Tensor:
        """The policy's (B, depth) block decisions for ``stage``."""
        return self.policy.block_decisions(stage, x, hw_shape, self.budget,
                                           self.index)

    def _capped(self, stage, x, hw_shape) -> torch.Tensor:
        scores = self.policy.block_scores(stage, x, hw_shape, self.budget,
                                          self.index)
        costs = scores.new_tensor(self.cap[1][stage], dtype=torch.float64)
        keep = torch.zeros_like(scores)
        for j in scores.argsort(dim=1, descending=True).unbind(1):
            rows = torch.arange(len(j), device=j.device)
            cost = costs[j]
            fits = (scores[rows, j] > 0) & (cost <= self._left)
            # Each (image, block) pair comes once: no mask indexing (it
            # would read the mask on the host).
            keep[rows, j] = fits.to(keep.dtype)
            self._left = self._left - fits.double() * cost
        return keep

    def run_block(self, stage, index, block, x, hw_shape):
        batch, length, _ = x.shape
        images = self._images[index]
        keep, counts = [0] * batch, [0] * batch
        self.keep_rows.append(keep)
        self.token_counts.append(counts)
        if not images:
            return x
        whole = len(images) == batch
        idx = None if whole else index_tensor(images, x)
        sub = x if whole else x.index_select(0, idx)
        sub_budget = self.budget if whole else \
            self.budget.index_select(0, idx)
        selected = self._token_decisions(stage, index, sub, sub_budget)
        if selected is None:
            sub_counts = [length] * len(images)
        else:
            # Under autocast the decisions may come out in half precision.
            selected = selected.to(x.dtype)
            # Counted as integers: a float16 sum of over 2048 ones is not
            # exact.
            sub_counts = to_host((selected > 0).sum(1))
            ran = [k for k, c in enumerate(sub_counts) if c]
            if len(ran) < len(images):
                # No token selected: the block is skipped whole.
                if not ran:
                    return x
                pos = index_tensor(ran, x)
                images = [images[k] for k in ran]
                sub_counts = [sub_counts[k] for k in ran]
                idx = index_tensor(images, x)
                whole = False
                sub = sub.index_select(0, pos)
                selected = selected.index_select(0, pos)
        for i, c in zip(images, sub_counts):
            keep[i], counts[i] = 1, c
        y, selected = self._run_rows(stage, block, sub, hw_shape, selected,
                                     sum(sub_counts))
        if whole:
            self._map.add_(selected)
            return y
        self._map.index_add_(0, idx, selected.float())
        return scatter_images(x, idx, y)

    def _token_decisions(self, stage, index, x, budget):
        """The policy's MLP token decisions for the images ``x`` of the
        block (None: no token selection)."""
        return self.policy.token_decisions(stage, index, x, budget,
                                           self.index)

    def _run_rows(self, stage, block, x, hw_shape, selected, count):
        """The block on the images ``x`` that run it, its MLP on the
        ``count`` rows ``selected`` (None: every row); returns the output
        and the token decisions (ones without selection)."""
        y = attention_residual(block, x, hw_shape)
        if selected is None:
            return y + mlp_delta(block, y), y.new_ones(y.shape[:2])
        return mlp_on_rows(block, y, selected, count), selected

    def end_stage(self, stage, x, hw_shape) -> None:
        depth = len(self._images)
        self.token_maps.append(
            self._map.div_(depth).view(x.shape[0], *hw_shape))

    def executed(self) -> Tuple[torch.Tensor, torch.Tensor, list]:
        """As :meth:`PolicyRunner.executed`, all on the host: the decisions
        were read there, and the token maps come in one transfer, so
        reading any figure afterwards costs no synchronisation."""
        keep = torch.tensor(self.keep_rows, dtype=torch.float32).t()
        tokens = torch.tensor(self.token_counts, dtype=torch.float32).t()
        maps = self.token_maps
        flat = to_host_tensor(torch.cat([m.flatten(1) for m in maps], 1))
        maps = [f.view(m.shape) for f, m in
                zip(flat.split([m[0].numel() for m in maps], 1), maps)]
        return keep, tokens, maps


def scatter_images(x: torch.Tensor, idx: torch.Tensor,
                   y: torch.Tensor) -> torch.Tensor:
    """``x`` with the images ``idx`` replaced by ``y``. In inference ``x``
    (the previous block's output, used by nothing else) is written in place
    instead of copying the whole batch."""
    if torch.is_grad_enabled() and x.requires_grad:
        return x.index_copy(0, idx, y)
    return x.index_copy_(0, idx, y)


def cond(pred: torch.Tensor, true_fn, false_fn, operands: tuple):
    """``torch.cond`` while tracing (export, compile): both branches go
    into the graph, which runs one. In eager mode the branch is chosen on
    the host (one read of ``pred``) and run directly; eager
    ``torch.cond`` would trace its branches anew on every call."""
    if tracing():
        return torch.cond(pred, true_fn, false_fn, operands)
    return true_fn(*operands) if bool(pred) else false_fn(*operands)


class CondRunner(PolicyRunner):
    """Inference as one graph: the decisions of :class:`SkipRunner`, taken
    inside the graph.

    For each image and block, ``torch.cond`` on the policy's keep decision
    runs the block or passes the tokens through; inside it the token
    selector decides the MLP tokens, a second ``torch.cond`` skips the
    block when none is selected (as ``SkipRunner`` does), and the MLP runs
    on the selected rows only: ``nonzero`` -> ``index_select`` -> MLP ->
    ``index_copy``, of data-dependent size. Traced (``torch.export``, the
    ONNX exporter) nothing is read on the host, so the graph exports (ONNX
    ``If``/``NonZero``/``Gather``/``ScatterND``) with the budget as an
    input, and its executed work follows the decisions; run eagerly, each
    ``cond`` reads its predicate on the host (:func:`cond`). The batch
    runs image by image (a loop of fixed length: a batch of one is the
    use case). The shifted windows' masks are made once per stage,
    outside the branches.

    :meth:`executed` gives the same figures as ``SkipRunner``'s, as
    tensors of the graph. ``budget_mode='cap'`` (a sequential allowance)
    is not supported.
    """

    def __init__(self, policy, budget, index, cap=None) -> None:
        self.check_cap(cap)
        super().__init__(policy, budget, index)
        # The task columns as a tensor made here, outside the branches: a
        # constant made inside a traced branch does not export.
        self.index = torch.tensor(self.index)
        # Per block: (B,) executed (0/1) and MLP tokens run, float32.
        self.keeps: List[torch.Tensor] = []
        self.tokens: List[torch.Tensor] = []

    @staticmethod
    def check_cap(cap) -> None:
        """Refuse a cap, naming why."""
        if cap is not None:
            raise ValueError(
                "budget_mode='cap' cannot run as a graph (Control.graph): "
                "its blocks are chosen one after another against what is "
                "left of each image's allowance; use budget_mode='target' "
                "or 'input'")

    def start_stage(self, stage, x, hw_shape) -> None:
        self._plan = self.policy.block_decisions(stage, x, hw_shape,
                                                 self.budget, self.index)
        self._masks = {}
        self._map = x.new_zeros(x.shape[:2], dtype=torch.float32)
        self._depth = 0

    def _mask(self, attn: nn.Module, x: torch.Tensor, hw_shape):
        shift = attn.shift_size
        if shift not in self._masks:
            self._masks[shift] = shift_mask(attn, hw_shape, x.device)
        return self._masks[shift]

    def _image_budget(self, i: int, batch: int):
        if batch == 1:
            return self.budget
        # BudgetTerms or a tensor: one image's budget as a (1,) tensor.
        return self.budget.index_select(
            0, torch.tensor([i], device=self._plan.device))

    def run_block(self, stage, index, block, x, hw_shape):
        batch, length, _ = x.shape
        mask = self._mask(block.attn, x, hw_shape)
        outs, counts, maps = [], [], []
        for i in range(batch):
            y, count, selected = self._run_image(
                stage, index, block, x[i:i + 1], hw_shape, mask,
                self._image_budget(i, batch), self._plan[i, index] > 0)
            outs.append(y)
            counts.append(count)
            maps.append(selected)
        x = outs[0] if batch == 1 else torch.cat(outs)
        counts = torch.cat(counts)
        self.tokens.append(counts)
        self.keeps.append((counts > 0).float())
        self._map = self._map + torch.cat(maps)
        self._depth += 1
        return x

    def _run_image(self, stage, index, block, x, hw_shape, mask, budget,
                   keep):
        """One image (1, L, C) through one block: the output, the MLP
        tokens run (1,) and the token map (1, L), float32."""
        policy, tasks = self.policy, self.index

        def attention_and_mlp(x, selected):
            y = attention_residual(block, x, hw_shape, mask)
            flat = y.reshape(-1, y.shape[-1])
            rows = torch.nonzero(selected.reshape(-1)).squeeze(1)
            sub = flat.index_select(0, rows)
            flat = flat.index_copy(
                0, rows, sub + mlp_delta(block, sub).to(sub.dtype))
            return flat.view_as(y)

        def run(x):
            selected = policy.token_decisions(stage, index, x, budget,
                                              tasks)
            if selected is None:
                y = attention_residual(block, x, hw_shape, mask)
                y = y + mlp_delta(block, y)
                ones = x.new_ones(x.shape[:2], dtype=torch.float32)
                return y, ones.sum(1), ones
            selected = selected > 0
            count = selected.sum(1).float()
            y = cond(count.sum() > 0, attention_and_mlp,
                     lambda x, selected: x.clone(), (x, selected))
            return y, count, selected.float()

        def skip(x):
            return (x.clone(), x.new_zeros(1, dtype=torch.float32),
                    x.new_zeros(x.shape[:2], dtype=torch.float32))

        return cond(keep, run, skip, (x, ))

    def end_stage(self, stage, x, hw_shape) -> None:
        self.token_maps.append(
            (self._map / self._depth).view(x.shape[0], *hw_shape))

    def executed(self) -> Tuple[torch.Tensor, torch.Tensor, list]:
        return (torch.stack(self.keeps, 1), torch.stack(self.tokens, 1),
                self.token_maps)


def bucket_size(count: int, total: int, buckets: Sequence[float]) -> int:
    """The rows a captured block runs its MLP on for ``count`` selected
    of ``total``: the smallest ``ceil(f * total)`` over the fractions
    ``buckets`` (ascending, the last 1) that holds ``count``."""
    for f in buckets:
        size = math.ceil(f * total)
        if size >= count:
            return size
    return total


def check_buckets(buckets: Sequence[float]) -> Tuple[float, ...]:
    """``buckets`` ascending, each in (0, 1], the last 1: refused
    otherwise, naming the value."""
    out = tuple(sorted(float(f) for f in buckets))
    if not out or any(not 0 < f <= 1 for f in out) or out[-1] != 1:
        raise ValueError(f'token buckets must be fractions in (0, 1] '
                         f'ending with 1, got {tuple(buckets)!r}')
    return out


def _captured_block(block: nn.Module, x: torch.Tensor, hw_shape: HWShape,
                    selected: torch.Tensor, size: int) -> torch.Tensor:
    """One block on the images ``x`` (n, L, C), its MLP on ``size`` rows:
    the selected ones (``selected`` (n, L), 0/1) and, up to ``size``,
    padding rows (row 0) whose MLP output is masked out of the scatter.
    Every shape depends on ``size`` and the inputs' shapes alone (what
    :class:`CapturedRunner` compiles once per shape). The shifted
    windows' mask is made in the graph, a constant of the map's size
    (faster than reading it as an input)."""
    y = attention_residual(block, x, hw_shape)
    flat = y.reshape(-1, y.shape[-1])
    sel = selected.reshape(-1)
    if size == flat.shape[0]:
        delta = mlp_delta(block, flat).to(flat.dtype)
        return (flat + delta * sel.unsqueeze(1).to(flat.dtype)).view_as(y)
    rows = torch.nonzero_static(sel, size=size, fill_value=-1).squeeze(1)
    valid = (rows >= 0).unsqueeze(1)
    rows = rows.clamp_min(0)
    delta = mlp_delta(block, flat.index_select(0, rows)).to(flat.dtype)
    # where, not a product: a non-finite padding row adds exactly zero.
    return flat.index_add(0, rows, torch.where(valid, delta, 0)).view_as(y)


def _captured_tokens(policy: nn.Module, stage: int, index: int,
                     x: torch.Tensor, budget: torch.Tensor,
                     tasks: List[int]) -> torch.Tensor:
    """The token selector of a block, 0/1 in ``x``'s dtype (compiled once
    per block and shape)."""
    return (policy.token_decisions(stage, index, x, budget, tasks) >
            0).to(x.dtype)


def _captured_block_tokens(block: nn.Module, x: torch.Tensor,
                           hw_shape: HWShape, selected: torch.Tensor,
                           size: int, policy: nn.Module, stage: int,
                           index: int, budget: torch.Tensor,
                           tasks: List[int]) -> tuple:
    """:func:`_captured_block` followed by the token selector of the next
    block (``index + 1``) on its output, in one graph: where the same
    images run both, the selector needs no call of its own."""
    y = _captured_block(block, x, hw_shape, selected, size)
    return y, _captured_tokens(policy, stage, index + 1, y, budget, tasks)


class _Taps(BlockRunner):
    """How the captured pieces tap a stage: its norm, as the default
    stage output, left in the tokens' (channels-last) memory order: the
    compiled heads' convolutions run faster on it than on the contiguous
    (B, C, H, W) copy; the values are the same."""

    def stage_output(self, stage, x, hw_shape, norm, dims):
        return norm(x).view(-1, *hw_shape, dims).permute(0, 3, 1, 2)


# Stateless: one object for every forward (dynamo guards on it).
_TAPS = _Taps()


def _captured_embed(encoder: nn.Module, policy: nn.Module, x: torch.Tensor,
                    budget: torch.Tensor, tasks: List[int]) -> tuple:
    """The patch embedding and the first stage's block decisions (compiled
    once per input shape): the tokens, their map's size, the plan."""
    x, hw_shape = encoder.embed(x)
    return x, hw_shape, policy.block_decisions(0, x, hw_shape, budget,
                                               tasks)


def _captured_leave(encoder: nn.Module, policy: nn.Module, stage: int,
                    x: torch.Tensor, hw_shape: HWShape,
                    budget: torch.Tensor, tasks: List[int]) -> tuple:
    """A stage's patch merging and tapped output, and the next stage's
    block decisions (None after the last stage), compiled once per stage
    and input shape."""
    x, hw_shape, out = encoder.leave_stage(stage, x, hw_shape, _TAPS)
    plan = None
    if stage + 1 < len(encoder.stages):
        plan = policy.block_decisions(stage + 1, x, hw_shape, budget, tasks)
    return x, hw_shape, out, plan


class CapturedPieces:
    """The compiled functions of the captured mode for one encoder and one
    task set, built once and reused by every forward: a block (attention
    and MLP on a bucket of rows), a token selector, the patch embedding
    with the first stage's block decisions, and per stage its patch
    merging and tapped output with the next stage's block decisions, each
    compiled (``compile_static``: static shapes) for each shape it meets,
    one copy of each per block or stage (dynamo specialises a graph on
    what the code reads as constants: the block's index, shift and
    drop-path rate). Per block one graph per bucket and number of images
    that keep the block (1 at batch 1), one per bucket of the block with
    the next block's token selector in its graph (when every image runs
    both), and one token-selector graph per number of images; one graph
    for the embedding and one per stage: :meth:`bound` graphs at most.

    Args:
        buckets: The token buckets, fractions of a block's tokens
            (:func:`check_buckets`).
        compiler: ``fn -> compiled fn`` (default: ``compiled_copy``'s);
            tests pass a counting one.
    """

    def __init__(self, buckets: Sequence[float] = (0.25, 0.5, 0.75, 1.),
                 compiler=None) -> None:
        self.buckets = check_buckets(buckets)
        self._compiler = compiler
        self._fns: dict = {}

    def block(self, stage: int, index: int):
        """Block ``index`` of ``stage``'s compiled function."""
        return self._fn(_captured_block, stage, index)

    def block_tokens(self, stage: int, index: int):
        """Block ``index`` of ``stage`` with the next block's token
        selector, compiled."""
        return self._fn(_captured_block_tokens, stage, index)

    def tokens(self, stage: int, index: int):
        """Block ``index`` of ``stage``'s compiled token selector."""
        return self._fn(_captured_tokens, stage, index)

    def embed(self):
        """The compiled patch embedding and first block decisions."""
        return self._fn(_captured_embed, 0, -1)

    def leave(self, stage: int):
        """``stage``'s compiled end: patch merging, output, next plan."""
        return self._fn(_captured_leave, stage, -1)

    def _fn(self, fn, stage: int, index: int):
        # A copy of its own per block: its graphs (one per bucket and
        # number of images) are the only ones dynamo looks through when it
        # is called, and the limit holds per block.
        key = (fn.__name__, stage, index)
        if key not in self._fns:
            self._fns[key] = compiled_copy(fn, self._compiler)
        return self._fns[key]

    def bound(self, blocks: int, stages: int, batch: int) -> int:
        """The most graphs the functions compile for an encoder of
        ``blocks`` blocks in ``stages`` stages at batch size ``batch``."""
        return blocks * (batch * (len(self.buckets) + 1) +
                         len(self.buckets)) + stages + 1

    def limit(self, blocks: int, stages: int, batch: int):
        """A context setting ``torch._dynamo``'s recompilation limit to
        the most graphs one block's function may need (``batch x
        buckets``) and making a call beyond it raise
        ``CapturedLimitError`` instead of falling back to eager code
        silently."""
        return strict_recompiles(
            batch * len(self.buckets),
            f'more than {batch * len(self.buckets)} graphs for a block '
            f'or a stage ({self.bound(blocks, stages, batch)} for an '
            f'encoder of {blocks} blocks in {stages} stages at batch '
            f'{batch})')


class CapturedRunner(SkipRunner):
    """Inference in shapes from a fixed set (``Control.captured``): the
    decisions and host reads of :class:`SkipRunner` (the stage's block
    plan once per stage, an executed block's token counts once), but
    each executed block runs its MLP on a *bucket* of rows, its selected
    tokens padded up to the smallest of ``pieces.buckets`` x its tokens
    that holds them (padding rows masked out of the scatter), and block,
    token selector, patch embedding and each stage's end (patch merging,
    tapped output and the next stage's block decisions) run as compiled
    functions built once per shape (:class:`CapturedPieces`): what runs
    eagerly between them is the bookkeeping of the host reads. The
    stages are tapped as the default ``stage_output`` does (norm, then
    (B, C, H, W) in channels-last memory order), not through this
    runner's ``stage_output``. Outputs equal ``SkipRunner``'s; the
    executed figures are the policy's (nominal), and :meth:`padding`
    the rows run beyond them (the bucket padding).

    Args:
        budget: (B,) budget input of the policy per image (its terms are
            computed in the compiled graphs).
        pieces: The encoder's :class:`CapturedPieces`.
        Others: :class:`SkipRunner`'s.
    """

    def __init__(self, policy, budget, index, cap=None, *,
                 pieces: CapturedPieces) -> None:
        super().__init__(policy, budget, index, cap)
        self.pieces = pieces
        self.padded_counts: List[List[float]] = []
        # ((stage, block), its token decisions) computed ahead.
        self._next_tokens = (None, None)

    def embed(self, encoder, x):
        x, hw_shape, self._plan = self.pieces.embed()(
            encoder, self.policy, x, self.budget, self.index)
        return x, hw_shape

    def _block_decisions(self, stage, x, hw_shape) -> torch.Tensor:
        # Computed with the previous stage's end (or the embedding).
        return self._plan

    def leave_stage(self, encoder, stage, x, hw_shape):
        x, hw_shape, out, self._plan = self.pieces.leave(stage)(
            encoder, self.policy, stage, x, hw_shape, self.budget,
            self.index)
        return x, hw_shape, out

    def run_block(self, stage, index, block, x, hw_shape):
        self._padded = [0.] * x.shape[0]
        self.padded_counts.append(self._padded)
        self._index = index
        y = super().run_block(stage, index, block, x, hw_shape)
        keep = self.keep_rows[-1]
        ran = sum(keep)
        if ran:
            # The padding of the bucket, shared by the images that ran.
            extra = (self._size - sum(self.token_counts[-1])) / ran
            for i, k in enumerate(keep):
                if k:
                    self._padded[i] = self.token_counts[-1][i] + extra
        return y

    def _token_decisions(self, stage, index, x, budget):
        if not self.policy.token_select:
            return None
        if self._next_tokens[0] == (stage, index):
            # Computed with the previous block (see _run_rows).
            selected, self._next_tokens = self._next_tokens[1], (None, None)
            return selected
        return self.pieces.tokens(stage, index)(
            self.policy, stage, index, x, budget, self.index)

    def _run_rows(self, stage, block, x, hw_shape, selected, count):
        index = self._index
        if selected is None:
            selected = x.new_ones(x.shape[:2])
        total = selected.numel()
        self._size = bucket_size(count, total, self.pieces.buckets)
        args = (block, x, hw_shape, selected, self._size)
        batch = len(self.keep_rows[-1])
        # Every image runs this block and keeps the next one: its token
        # selector runs in this block's graph.
        if (self.policy.token_select and x.shape[0] == batch
                and index + 1 < len(self._images)
                and len(self._images[index + 1]) == batch):
            y, tokens = self.pieces.block_tokens(stage, index)(
                *args, self.policy, stage, index, self.budget, self.index)
            self._next_tokens = ((stage, index + 1), tokens)
        else:
            y = self.pieces.block(stage, index)(*args)
        return y, selected

    def padding(self) -> torch.Tensor:
        """(B, blocks) padding rows each image's blocks ran beyond its
        selected tokens, the bucket's padding shared by the images that
        ran the block (zero where skipped), float32 on the host."""
        return (torch.tensor(self.padded_counts, dtype=torch.float32) -
                torch.tensor(self.token_counts, dtype=torch.float32)).t()
