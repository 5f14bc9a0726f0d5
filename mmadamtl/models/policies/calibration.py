"""Make a policy's executed compute follow the requested budget:
``calibrate_budget`` measures a trained policy's budget curve and
``policy_budget`` inverts it (``budget_mode='target'``);
``calibrate_policy`` makes an untrained policy follow a budget, for timing
without training."""
import warnings
from typing import Iterable, Optional, Sequence

import numpy as np
import torch

from mmadamtl.utils.cli import progress
from mmadamtl.utils.host_sync import tracing

from ..backbones.encoder import Control
from .policy_head import CALIBRATION_GRID


@torch.no_grad()
def calibrate_budget(backbone, batches: Iterable[torch.Tensor],
                     tasks: Optional[Sequence[str]] = None,
                     show_progress: bool = False) -> np.ndarray:
    """Measure the policy's budget curve and store it in
    ``backbone.policy.budget_curve``.

    For every budget input of ``CALIBRATION_GRID`` the adaptive backbone
    runs (inference decisions) on the preprocessed image ``batches``; the
    curve is the mean executed share of block compute (``block_fraction``)
    at each input, made non-decreasing. The backbone is restored to its
    training mode afterwards.

    Args:
        backbone: An ``AdaptiveSwinTransformer`` with a policy.
        batches: Preprocessed images, (B, 3, H, W) each.
        tasks: The tasks run (a per-task policy's union); None: all.

    Returns:
        np.ndarray: The curve, one share per grid input.
    """
    batches = list(batches)
    if not batches:
        raise ValueError('calibrate_budget: no images to calibrate on')
    was_training = backbone.training
    backbone.eval()
    try:
        curve = []
        grid = progress(CALIBRATION_GRID, 'calibrating budgets') \
            if show_progress else CALIBRATION_GRID
        for b in grid:
            total, count = 0., 0
            for x in batches:
                _, stats = backbone.encode(x, Control(
                    budget=b, budget_mode='input', tasks=tasks))
                total += float(stats.block_fraction.sum())
                count += x.shape[0]
            curve.append(total / count)
    finally:
        backbone.train(was_training)
    curve = np.maximum.accumulate(np.asarray(curve, dtype=np.float64))
    policy = backbone.policy
    policy.budget_curve.copy_(torch.as_tensor(curve))
    return curve


def policy_budget(policy, requested: torch.Tensor) -> torch.Tensor:
    """The budget inputs at which ``policy`` executes ``requested`` shares
    of block compute on average: its ``budget_curve`` inverted by linear
    interpolation.

    A request the policy cannot meet is not silently changed: a warning
    names it (Python shows each distinct warning once), and the
    prediction records the executed share
    (``metainfo['policy']['block_fraction']``). Without a measured curve
    the request is the raw input; below the smallest share the policy
    executes it gets the smallest input, above the largest input 1.0.

    Computed with tensor operations only (``np.interp`` over the curve's
    distinct values, in float64), so it runs inside an exported graph
    with the request as the graph's input; the warnings, which read
    values on the host, are left out while tracing.
    """
    if not tracing():
        _warn_unmet(policy.budget_curve, requested)
    curve = policy.budget_curve.detach().double()
    req = requested.detach().double().to(curve.device)
    grid = torch.tensor(CALIBRATION_GRID, dtype=torch.float64,
                        device=curve.device)
    # The curve is non-decreasing; a flat stretch counts from its first
    # point (np.unique's first index): first[k] = how many points lie
    # below curve[k].
    first = (curve.unsqueeze(0) < curve.unsqueeze(1)).sum(1)
    lo, hi = curve[:-1], curve[1:]
    lo_y, hi_y = grid[first[:-1]], grid[1:]
    rising = hi > lo
    slope = torch.where(rising, (hi_y - lo_y) / torch.where(
        rising, hi - lo, torch.ones_like(lo)), torch.zeros_like(lo))
    r = req.unsqueeze(-1)
    inside = rising & (r >= lo) & (r < hi)
    inputs = torch.where(inside, slope * (r - lo) + lo_y,
                         torch.zeros_like(lo)).sum(-1)
    last = curve[-1]
    inputs = torch.where(req >= last, torch.where(
        req > last, torch.ones_like(req), grid[first[-1]]), inputs)
    inputs = torch.where(req < curve[0], grid[0], inputs)
    # A constant curve: its one input (np.interp needs two points).
    inputs = torch.where(rising.any(), inputs, grid[0])
    inputs = torch.where(torch.isnan(curve).any(), req, inputs)
    return inputs.to(dtype=requested.dtype, device=requested.device)


def _warn_unmet(curve: torch.Tensor, requested: torch.Tensor) -> None:
    """:func:`policy_budget`'s warnings: no measured curve, or requests
    outside what the policy executes."""
    curve = curve.detach().cpu().double().numpy()
    if np.isnan(curve).any():
        warnings.warn(
            "budget_mode='target': this model's budget curve is not "
            "measured (train with BudgetCalibrationHook or run "
            "tools/calibrate_budget.py on the checkpoint); the budget is "
            "the policy's raw input and the executed share may differ "
            "from it")
        return
    req = requested.detach().cpu().double().numpy()
    for r in np.unique(req[req < curve[0] - 1e-6]):
        warnings.warn(
            f'budget {r:g} is below the smallest share of block compute '
            f'this policy executes ({curve[0]:.3f}, at budget input '
            f'{CALIBRATION_GRID[0]}): it runs at that input')
    for r in np.unique(req[req > curve[-1] + 1e-6]):
        warnings.warn(
            f'budget {r:g} is above the largest share of block compute '
            f'this policy executes ({curve[-1]:.3f}, at budget input 1): '
            f'it runs at budget input 1')


def mixed_keep_rate(attn: float, mlp: float, share: float) -> float:
    """The rate ``p`` at which keeping a share ``p`` of the blocks and of
    their MLP tokens executes ``share`` of the blocks' compute:
    ``p (attn + p mlp) = share (attn + mlp)``."""
    return (-attn + (attn**2 + 4 * mlp * share *
                     (attn + mlp))**0.5) / (2 * mlp)


@torch.no_grad()
def calibrate_policy(model, inputs: torch.Tensor, budget: float,
                     iters: int = 16) -> dict:
    """Make an untrained policy execute about ``budget`` on ``inputs``.

    For timing an adaptive model that has no trained policy (e.g. Swin-T
    at 512x512 here): one offset is added to the output biases of all
    token selectors and one to those of all block selectors. Both are
    found by bisection: the token offset so that a share ``p`` of the
    tokens goes through the MLPs, the block offset so that the executed
    share of the blocks' compute is ``budget``, where ``p`` is chosen so
    that keeping a share ``p`` of the blocks and of the tokens would
    execute ``budget`` (a mix of both kinds of skipping, as a trained
    policy makes). The decisions stay input-dependent; the executed
    GFLOPs are whatever these decisions execute.

    Args:
        model: A ``MultiTaskEncoderDecoder`` with an adaptive backbone.
        inputs: Preprocessed images (B, 3, H, W).
        budget: The budget to calibrate to, in (0, 1].

    Returns:
        dict: The offsets found and the executed block fraction and keep
        rates they give on ``inputs``.
    """
    backbone = model.backbone
    policy = backbone.policy
    block_out = [s.out for s in policy.block_selectors if hasattr(s, 'out')]
    token_out = [t.out for stage in policy.token_selectors for t in stage]
    # The budget enters the logits only through a positive direct term,
    # so that lower budgets run less (an untrained policy's random
    # budget weights point anywhere).
    for m in policy.modules():
        if hasattr(m, 'budget_embed'):
            m.budget_embed.weight.zero_()
            m.budget_out.weight.fill_(1.)
    base = {m: m.bias.detach().clone() for m in block_out + token_out}
    cost = backbone.cost(inputs.shape[2:])
    attn, mlp = cost.attn_total, cost.mlp_total
    if not token_out:
        p_token = 1.
    elif not block_out:
        p_token = max(0., (budget * (attn + mlp) - attn) / mlp)
    else:
        p_token = mixed_keep_rate(attn, mlp, budget)

    def shift(mods, offset):
        for m in mods:
            m.bias.copy_(base[m] + offset)

    def stats():
        return backbone.encode(inputs, Control(
            budget=budget, budget_mode='input',
            tasks=model.active_tasks))[1]

    def bisect(mods, measure, target):
        lo, hi = -30., 30.
        for _ in progress(range(iters), 'calibrating the policy'):
            mid = (lo + hi) / 2
            shift(mods, mid)
            if measure() < target:
                lo = mid
            else:
                hi = mid
        shift(mods, hi)
        return hi

    token_offset = block_offset = 0.
    if token_out:
        shift(block_out, 100.)
        token_offset = bisect(
            token_out, lambda: float(stats().token_fraction.mean()),
            p_token)
    if block_out:
        block_offset = bisect(
            block_out, lambda: float(stats().block_fraction.mean()), budget)
    s = stats()
    return dict(token_offset=token_offset, block_offset=block_offset,
                block_fraction=float(s.block_fraction.mean()),
                block_keep=float(s.block_keep.mean()),
                token_keep=float(s.token_keep.mean()))
