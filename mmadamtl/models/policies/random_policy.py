"""The random-skipping control of AdaMTL's policy."""
from typing import List, Optional

import torch
import torch.nn as nn


class RandomDecisions:
    """Uniform random block and token decisions in place of a policy's,
    for the control "does the learned policy beat random skipping at the
    same executed GFLOPs?".

    Every block is kept, and every token of a kept block runs its MLP,
    independently with the same probability ``p``, chosen so that the
    expected executed share of the blocks' compute is ``share``
    (``p (attn + p mlp) = share (attn + mlp)``; with token selection off,
    blocks alone: ``p = share``). Draws come from a seeded generator, so a
    run is reproducible. The policy's selectors do not run, but the
    encoder's figures still charge their cost, as for the learned policy.

    Args:
        policy: The ``PolicyHead`` whose decisions are replaced (its block
            and token switches and costs are kept).
        share: Target executed share of block compute in (0, 1].
        seed: Seed of the draws.
    """

    def __init__(self, policy: nn.Module, share: float,
                 seed: int = 0) -> None:
        if not 0 < share <= 1:
            raise ValueError(f'random policy: share must be in (0, 1], got '
                             f'{share!r}')
        self.policy = policy
        self.share = float(share)
        self.generator = torch.Generator().manual_seed(seed)
        self.keep_rate: Optional[float] = None

    def set_cost(self, attn: float, mlp: float) -> None:
        """Fix ``p`` for blocks of these total attention and MLP costs."""
        from .calibration import mixed_keep_rate
        self.keep_rate = mixed_keep_rate(attn, mlp, self.share) \
            if self.policy.token_select else self.share
        self.keep_rate = min(1., self.keep_rate)

    def _draw(self, shape, like: torch.Tensor) -> torch.Tensor:
        u = torch.rand(shape, generator=self.generator)
        return (u < self.keep_rate).to(like.device, like.dtype)

    def block_decisions(self, stage: int, x: torch.Tensor, hw_shape,
                        budget, index: List[int], **kwargs):
        return self._draw((x.shape[0], self.policy.depths[stage]), x)

    def token_decisions(self, stage: int, block: int, x: torch.Tensor,
                        budget, index: List[int], **kwargs):
        if not self.policy.token_select:
            return None
        return self._draw(x.shape[:2], x)

    def block_scores(self, *args, **kwargs):
        raise ValueError("the random policy has no scores for "
                         "budget_mode='cap'")
