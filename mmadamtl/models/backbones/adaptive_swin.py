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
        self._vectors: Dict[tuple, dict] = {}

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

        img_hw = tuple(x.shape[2:])
        x, hw_shape = self.patch_embed(x)
        if self.use_abs_pos_embed:
            x = x + self.absolute_pos_embed
        x = self.drop_after_pos(x)

        keeps, n_tokens, token_maps = [], [], []
        outs = []
        run = self._blend_block if self.training else self._skip_block
        for i, stage in enumerate(self.stages):
            keep = self.policy.block_decisions(i, x, hw_shape, budget, index)
            stage_tokens = []
            for j, block in enumerate(stage.blocks):
                x, tokens = run(i, j, block, x, hw_shape, keep[:, j],
                                budget, index)
                # tokens: (B, L) MLP decisions, zero where the block was
                # skipped.
                stage_tokens.append(tokens)
                n_tokens.append(tokens.sum(1))
            keeps.append(keep)
            token_maps.append(
                torch.stack(stage_tokens).detach().float().mean(0).view(
                    batch, *hw_shape))

            out, out_hw_shape = x, hw_shape
            if stage.downsample is not None:
                x, hw_shape = stage.downsample(x, hw_shape)
            if i in self.out_indices:
                norm_layer = getattr(self, f'norm{i}')
                out = norm_layer(out).view(-1, *out_hw_shape,
                                           self.num_features[i])
                outs.append(out.permute(0, 3, 1, 2).contiguous())

        # Per-block costs as vectors: one product per quantity instead of
        # a dozen small operations per block.
        vec = self._cost_vectors(cost, img_hw, x.device)
        keep = torch.cat(keeps, 1).float()  # (B, blocks)
        tokens = torch.stack(n_tokens, 1).float()  # (B, blocks)
        mlp_flops = tokens @ vec['mlp_per_token']
        block_flops = keep @ vec['attn'] + mlp_flops
        policy_flops = vec['block_selectors'] + keep @ vec['token_selector']
        self.last_stats = AdaptiveStats(
            encoder_flops=cost.fixed_total + block_flops + policy_flops,
            policy_flops=policy_flops,
            static_flops=cost.total,
            block_fraction=block_flops / cost.blocks_total,
            token_fraction=mlp_flops / vec['mlp_total'],
            block_keep=keep.detach() @ vec['stage_mean'],
            token_keep=(tokens.detach() / vec['tokens']) @ vec['stage_mean'],
            token_maps=token_maps,
            blocks=keep.detach())
        return outs

    def _cost_vectors(self, cost: SwinCost, img_hw: Tuple[int, int],
                      device) -> Dict[str, torch.Tensor]:
        """Per-block multiply-adds of ``cost`` as float32 vectors over all
        blocks, and the (blocks, stages) matrix averaging over a stage."""
        key = (img_hw, str(device))
        cache = self._vectors
        if key not in cache:
            blocks = [(i, b) for i, s in enumerate(cost.stages)
                      for b in s.blocks]
            depths = [len(s.blocks) for s in cost.stages]
            mean = torch.zeros(len(blocks), len(depths))
            for k, (i, _) in enumerate(blocks):
                mean[k, i] = 1. / depths[i]

            def vec(values):
                return torch.tensor(values, dtype=torch.float64).float()

            cache[key] = {
                k: v.to(device)
                for k, v in dict(
                    attn=vec([b.attn for _, b in blocks]),
                    mlp_per_token=vec([b.mlp_per_token for _, b in blocks]),
                    tokens=vec([b.tokens for _, b in blocks]),
                    token_selector=vec([
                        self.policy.token_selector_flops(i, b.tokens)
                        for i, b in blocks
                    ]),
                    stage_mean=mean).items()
            }
            cache[key].update(
                block_selectors=float(sum(
                    self.policy.block_selector_flops(i, s.blocks[0].tokens)
                    for i, s in enumerate(cost.stages))),
                mlp_total=float(sum(b.mlp_per_token * b.tokens
                                    for _, b in blocks)))
        return cache[key]

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
        if sel is not None:
            # Under autocast the decisions may come out in half precision.
            sel = sel.to(x.dtype)
        y = sub + block.attn(block.norm1(sub), hw_shape)
        if sel is None:
            y = y + ffn_delta(block.ffn, block.norm2(y))
            sel = y.new_ones(y.shape[:2])
        else:
            flat = y.view(-1, dims)
            rows = sel.view(-1).nonzero().squeeze(1)
            if rows.numel() == flat.shape[0]:
                y = y + ffn_delta(block.ffn, block.norm2(y))
            elif rows.numel():
                # y is this block's own fresh tensor: add in place.
                h = block.norm2(flat.index_select(0, rows))
                flat.index_add_(0, rows,
                                ffn_delta(block.ffn, h).to(flat.dtype))
        if whole:
            return y, sel
        tokens = tokens.index_copy(0, idx, sel)
        if torch.is_grad_enabled() and x.requires_grad:
            return x.index_copy(0, idx, y), tokens
        # x is the previous block's output, used by nothing else: write
        # the images that ran into it instead of copying the whole batch.
        return x.index_copy_(0, idx, y), tokens

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
