"""Make an untrained policy follow a budget, for timing without training."""
import torch

from mmadamtl.utils.cli import progress


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
        # Keeping a share p of the blocks and of their MLP tokens runs
        # p (attn + p mlp) = budget (attn + mlp).
        p_token = (-attn + (attn**2 + 4 * mlp * budget *
                            (attn + mlp))**0.5) / (2 * mlp)

    def shift(mods, offset):
        for m in mods:
            m.bias.copy_(base[m] + offset)

    def stats():
        backbone(inputs, budget=budget, tasks=model.active_tasks)
        return backbone.last_stats

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
