"""mmseg's Swin Transformer with AdaMTL's input-dependent block and token
skipping."""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmseg.models.backbones import SwinTransformer
from mmseg.registry import MODELS

from .swin_flops import SwinCost, swin_cost

Budget = Union[None, float, torch.Tensor]


@dataclass
class AdaptiveStats:
    """What one forward pass executed, per image (first dim B).

    ``encoder_flops`` and ``policy_flops`` are multiply-adds (the policy's
    are included in the encoder's). ``block_fraction`` is the executed
    share of the blocks' compute, FLOPs-weighted (what ``BudgetLoss``
    drives to the budget); ``token_fraction`` the executed share of the
    MLPs' compute. ``block_keep``/``token_keep`` (B, stages) are the
    share of blocks run and of MLP tokens run per stage; ``token_maps``
    per stage (B, h, w) the share of the stage's blocks that ran each
    token's MLP. ``blocks`` (B, total blocks) the block decisions.
    In training these carry straight-through gradients.
    """
    encoder_flops: torch.Tensor
    policy_flops: torch.Tensor
    static_flops: float
    block_fraction: torch.Tensor
    token_fraction: torch.Tensor
    block_keep: torch.Tensor
    token_keep: torch.Tensor
    token_maps: List[torch.Tensor]
    blocks: torch.Tensor


def ffn_delta(ffn, x: torch.Tensor) -> torch.Tensor:
    """The residual branch of mmcv's ``FFN`` (what it adds to identity)."""
    return ffn.dropout_layer(ffn.gamma2(ffn.layers(x)))


def check_budget(budget: Budget, where: str = 'budget') -> Budget:
    """``budget`` must be None or in (0, 1]."""
    if budget is None:
        return None
    if isinstance(budget, torch.Tensor):
        bad = budget[(budget <= 0) | (budget > 1) | budget.isnan()]
        if bad.numel():
            raise ValueError(f'{where}: budgets must lie in (0, 1], got '
                             f'{bad.tolist()}')
        return budget
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) \
            or not 0 < budget <= 1:
        raise ValueError(f'{where} must be None (run every block) or a '
                         f'number in (0, 1], got {budget!r}')
    return float(budget)


@MODELS.register_module()
class AdaptiveSwinTransformer(SwinTransformer):
    """Swin Transformer whose blocks and MLP tokens a policy may skip.

    Takes every argument of mmseg's ``SwinTransformer``; its Swin
    parameters keep mmseg's state-dict keys (the policy's live under
    ``policy.``), so mmseg and converted Swin checkpoints load unchanged.

    ``forward(x, budget=None, tasks=None)``: with ``policy=None`` or
    ``budget=None`` it is mmseg's forward. Otherwise the policy decides
    per image, for the target ``budget`` (a float or one per image) and
    the ``tasks`` being run (per-task policies take the union):

    - training: Gumbel-sigmoid decisions with straight-through gradients;
      a skipped block or an unselected token's MLP is blended away
      (``x + m * (f(x) - x)``), so no compute is saved;
    - inference: deterministic decisions, and compute is really skipped
      for any batch size: each block runs only on the images that keep
      it, and its MLP only on the selected tokens (gathered over the
      whole sub-batch and scattered back). Skipped work is identity.

    After every forward, ``last_stats`` (an ``AdaptiveStats``) holds what
    was executed per image.

    Args:
        policy: A ``PolicyHead`` config (``embed_dims`` and ``depths`` are
            filled in), or None for a static Swin.
    """

    def __init__(self, *args, policy: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.policy = None
        if policy is not None:
            if any(getattr(b, 'with_cp', False) for s in self.stages
                   for b in s.blocks):
                raise ValueError('AdaptiveSwinTransformer: with_cp is not '
                                 'supported together with a policy')
            policy = dict(policy)
            policy.setdefault('embed_dims', list(self.num_features))
            policy.setdefault('depths', [len(s.blocks) for s in self.stages])
            self.policy = MODELS.build(policy)
        self.last_stats: Optional[AdaptiveStats] = None
        self._costs: Dict[Tuple[int, int], SwinCost] = {}

    def train(self, mode: bool = True):
        super().train(mode)
        return self

    def init_weights(self) -> None:
        super().init_weights()
        if self.policy is not None:
            self.policy.init_weights()

    def cost(self, img_hw: Sequence[int]) -> SwinCost:
        """Per-image multiply-adds for an input of size ``img_hw``."""
        key = (int(img_hw[0]), int(img_hw[1]))
        if key not in self._costs:
            self._costs[key] = swin_cost(self, key)
        return self._costs[key]

    def forward(self, x: torch.Tensor, budget: Budget = None,
                tasks: Optional[Sequence[str]] = None) -> List[torch.Tensor]:
        cost = self.cost(x.shape[2:])
        if self.policy is None or budget is None:
            outs = super().forward(x)
            self.last_stats = self._static_stats(x, cost)
            return outs
        check_budget(budget)
        batch = x.shape[0]
        if not isinstance(budget, torch.Tensor):
            budget = x.new_full((batch, ), budget)
        budget = budget.to(x.device, x.dtype)
        index = self.policy.task_index(tasks)

        x, hw_shape = self.patch_embed(x)
        if self.use_abs_pos_embed:
            x = x + self.absolute_pos_embed
        x = self.drop_after_pos(x)

        zeros = x.new_zeros(batch)
        policy_flops = zeros
        block_flops = zeros
        mlp_flops = zeros
        block_keep, token_keep, token_maps, blocks = [], [], [], []
        outs = []
        for i, stage in enumerate(self.stages):
            sc = cost.stages[i]
            keep = self.policy.block_decisions(i, x, hw_shape, budget, index)
            policy_flops = policy_flops + self.policy.block_selector_flops(
                i, sc.blocks[0].tokens)
            token_map = zeros.new_zeros(batch, x.shape[1])
            stage_tokens = zeros
            for j, block in enumerate(stage.blocks):
                bc = sc.blocks[j]
                run = self._blend_block if self.training else \
                    self._skip_block
                x, tokens = run(i, j, block, x, hw_shape, keep[:, j],
                                budget, index)
                # tokens: (B, L) MLP decisions, zero where the block was
                # skipped.
                n_tokens = tokens.sum(1)
                block_flops = block_flops + keep[:, j] * bc.attn + \
                    n_tokens * bc.mlp_per_token
                mlp_flops = mlp_flops + n_tokens * bc.mlp_per_token
                policy_flops = policy_flops + keep[:, j] * \
                    self.policy.token_selector_flops(i, bc.tokens)
                token_map = token_map + tokens.detach()
                stage_tokens = stage_tokens + n_tokens.detach() / bc.tokens
            depth = len(stage.blocks)
            block_keep.append(keep.detach().mean(1))
            token_keep.append(stage_tokens / depth)
            token_maps.append((token_map / depth).view(batch, *hw_shape))
            blocks.append(keep.detach())

            out, out_hw_shape = x, hw_shape
            if stage.downsample is not None:
                x, hw_shape = stage.downsample(x, hw_shape)
            if i in self.out_indices:
                norm_layer = getattr(self, f'norm{i}')
                out = norm_layer(out).view(-1, *out_hw_shape,
                                           self.num_features[i])
                outs.append(out.permute(0, 3, 1, 2).contiguous())

        blocks_total = cost.blocks_total
        mlp_total = sum(b.mlp_per_token * b.tokens for s in cost.stages
                        for b in s.blocks)
        self.last_stats = AdaptiveStats(
            encoder_flops=cost.fixed_total + block_flops + policy_flops,
            policy_flops=policy_flops,
            static_flops=cost.total,
            block_fraction=block_flops / blocks_total,
            token_fraction=mlp_flops / mlp_total,
            block_keep=torch.stack(block_keep, 1),
            token_keep=torch.stack(token_keep, 1),
            token_maps=token_maps,
            blocks=torch.cat(blocks, 1))
        return outs

    def _blend_block(self, i: int, j: int, block, x: torch.Tensor,
                     hw_shape, keep: torch.Tensor, budget: torch.Tensor,
                     index: List[int]):
        """Training: run the block for every image and blend with the
        (straight-through) decisions."""
        tokens = self.policy.token_decisions(i, j, x, budget, index)
        y = x + block.attn(block.norm1(x), hw_shape)
        delta = ffn_delta(block.ffn, block.norm2(y))
        if tokens is None:
            tokens = x.new_ones(x.shape[:2])
        y = y + delta * tokens.unsqueeze(-1)
        x = x + keep.view(-1, 1, 1) * (y - x)
        return x, tokens * keep.unsqueeze(1)

    def _skip_block(self, i: int, j: int, block, x: torch.Tensor,
                    hw_shape, keep: torch.Tensor, budget: torch.Tensor,
                    index: List[int]):
        """Inference: run the block only on the images that keep it, and
        its MLP only on their selected tokens."""
        batch, length, dims = x.shape
        idx = keep.nonzero().squeeze(1)
        tokens = x.new_zeros(batch, length)
        if idx.numel() == 0:
            return x, tokens
        whole = idx.numel() == batch
        sub = x if whole else x.index_select(0, idx)
        sub_budget = budget if whole else budget.index_select(0, idx)
        sel = self.policy.token_decisions(i, j, sub, sub_budget, index)
        y = sub + block.attn(block.norm1(sub), hw_shape)
        if sel is None:
            y = y + ffn_delta(block.ffn, block.norm2(y))
            sel = y.new_ones(y.shape[:2])
        else:
            flat = y.reshape(-1, dims)
            rows = sel.reshape(-1).nonzero().squeeze(1)
            if rows.numel():
                h = block.norm2(flat.index_select(0, rows))
                flat = flat.index_add(0, rows, ffn_delta(block.ffn, h))
            y = flat.view(-1, length, dims)
        if whole:
            return y, sel
        return x.index_copy(0, idx, y), tokens.index_copy(0, idx, sel)

    def _static_stats(self, x: torch.Tensor, cost: SwinCost) -> AdaptiveStats:
        batch = x.shape[0]
        ones = x.new_ones(batch)
        stages = len(cost.stages)
        return AdaptiveStats(
            encoder_flops=ones * cost.total,
            policy_flops=ones * 0,
            static_flops=cost.total,
            block_fraction=ones,
            token_fraction=ones,
            block_keep=x.new_ones(batch, stages),
            token_keep=x.new_ones(batch, stages),
            token_maps=[x.new_ones(batch, *s.hw) for s in cost.stages],
            blocks=x.new_ones(batch, sum(len(s.blocks)
                                         for s in cost.stages)))
