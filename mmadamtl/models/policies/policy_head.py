"""AdaMTL's task-aware policy network, conditioned on the target budget."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from mmadamtl.utils import check_tasks


def gumbel_sigmoid(logits: torch.Tensor, tau: float,
                   noise: float = 1.0) -> torch.Tensor:
    """Relaxed Bernoulli sample ``sigmoid((logits + s (g1 - g2)) / tau)``
    with Gumbel noise ``g`` scaled by ``noise`` (0: none, the
    deterministic ``sigmoid(logits / tau)``).

    The noise is drawn and added in float32 whatever the logits' dtype
    (under fp16 autocast ``1 - 1e-6`` rounds to 1 and ``log(-log(u))``
    to inf); the result has the logits' dtype.
    """
    z = logits.float()
    if noise:
        u = torch.rand((2, ) + z.shape, device=z.device,
                       dtype=torch.float32).clamp_(1e-6, 1 - 1e-6)
        g = -torch.log(-torch.log(u))
        z = z + noise * (g[0] - g[1])
    return torch.sigmoid(z / tau).to(logits.dtype)


class _StraightThrough(torch.autograd.Function):

    @staticmethod
    def forward(ctx, soft):
        return (soft > 0.5).to(soft.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad


def straight_through(soft: torch.Tensor) -> torch.Tensor:
    """Exact 0/1 decisions (``soft > 0.5``) in the forward pass, the soft
    values' gradient in the backward pass."""
    return _StraightThrough.apply(soft)


# Budget inputs at which ``calibrate_budget`` measures the executed share
# of block compute (the policy's ``budget_curve``).
CALIBRATION_GRID = tuple(round(0.02 * i, 2) for i in range(1, 51))


class BudgetTerms:
    """A batch's budgets with what they add to every selector's hidden
    units and outputs, computed once for all selectors
    (:meth:`PolicyHead.budget_terms`). The runners pass it where a budget
    tensor goes; a selector finds its own terms in it (``of``); a
    sub-batch (``index_select``) is a plain budget tensor again, whose
    selectors compute their own terms."""

    def __init__(self, budget: torch.Tensor,
                 terms: Dict[int, Tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.budget = budget
        self._terms = terms

    def of(self, selector: nn.Module) -> Optional[tuple]:
        return self._terms.get(id(selector))

    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        return self.budget.index_select(dim, index)


def split_budget(budget) -> Tuple[Optional[torch.Tensor],
                                  Optional[BudgetTerms]]:
    """``(budget tensor, terms)`` of a budget tensor or a
    :class:`BudgetTerms`."""
    if isinstance(budget, BudgetTerms):
        return budget.budget, budget
    return budget, None


def budget_feature(budget: torch.Tensor, dtype) -> torch.Tensor:
    """(B, 1) input of the budget pathways: the budget centred and scaled
    to about unit range, 4 (b - 0.5)."""
    return (4 * (budget.view(-1, 1) - 0.5)).to(dtype)


class _Selector(nn.Module):
    """Per-token embedding shared by the tasks, one output per task.

    ``hidden = relu(W x + U b)``; the budget ``b`` of each image enters
    through ``U`` (a Linear(1, hidden)) and a direct term on the outputs.
    """

    def __init__(self, in_dims: int, hidden: int, num_tasks: int,
                 budget_conditioned: bool) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dims, hidden)
        self.budget_conditioned = budget_conditioned
        if budget_conditioned:
            self.budget_embed = nn.Linear(1, hidden)

    def reset_parameters(self) -> None:
        """PyTorch's default init, outputs biased towards "keep"."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()
        nn.init.constant_(self.out.bias, self.init_logit)

    def budget_terms(self, budget: Optional[torch.Tensor], dtype,
                     terms: Optional[tuple]) -> Optional[tuple]:
        """What the budgets add to the hidden units (B, hidden) and to the
        outputs (B, outputs): ``terms`` when given (computed for many
        selectors at once, :meth:`PolicyHead.budget_terms`), None
        without budget conditioning."""
        if not self.budget_conditioned:
            return None
        if terms is not None:
            return terms
        feature = budget_feature(budget, dtype)
        return self.budget_embed(feature), self.budget_out(feature)

    def hidden(self, x: torch.Tensor,
               terms: Optional[tuple]) -> torch.Tensor:
        """``terms``: from :meth:`budget_terms`. The selectors call their
        layers' functions directly (the same operations as the modules'
        forward, without a module call each: a selector runs before every
        block)."""
        h = F.linear(x, self.embed.weight, self.embed.bias)
        if terms is not None:
            b = terms[0]
            h = h + b.view(b.shape[0], *([1] * (h.dim() - 2)), -1)
        return F.relu(h, inplace=True)


class TokenSelector(_Selector):
    """Which tokens of a block go through its MLP: logits (B, L, T)."""

    def __init__(self, in_dims: int, hidden: int, num_tasks: int,
                 budget_conditioned: bool, init_logit: float) -> None:
        super().__init__(in_dims, hidden, num_tasks, budget_conditioned)
        self.out = nn.Linear(hidden, num_tasks)
        if budget_conditioned:
            self.budget_out = nn.Linear(1, num_tasks, bias=False)
        self.init_logit = init_logit
        self.reset_parameters()

    def forward(self, x: torch.Tensor, budget: Optional[torch.Tensor],
                terms: Optional[tuple] = None) -> torch.Tensor:
        terms = self.budget_terms(budget, x.dtype, terms)
        out = self.out
        logits = F.linear(self.hidden(x, terms), out.weight, out.bias)
        if terms is not None:
            logits = logits + terms[1].unsqueeze(1)
        return logits


class BlockSelector(_Selector):
    """Which blocks of a stage run, read from the stage input: logits
    (B, T, depth).

    AdaMTL flattens all P tokens' embeddings into one Linear(P*64, depth),
    which ties the head to one input size; here the embedded tokens are
    first average-pooled to a fixed ``pool_size`` grid so any input size
    works.
    """

    def __init__(self, in_dims: int, hidden: int, num_tasks: int,
                 depth: int, pool_size: int, budget_conditioned: bool,
                 init_logit: float) -> None:
        super().__init__(in_dims, hidden, num_tasks, budget_conditioned)
        self.num_tasks, self.depth, self.pool_size = num_tasks, depth, \
            pool_size
        self.out = nn.Linear(hidden * pool_size**2, num_tasks * depth)
        if budget_conditioned:
            self.budget_out = nn.Linear(1, num_tasks * depth, bias=False)
        self.init_logit = init_logit
        self.reset_parameters()

    def forward(self, x: torch.Tensor, hw_shape: Sequence[int],
                budget: Optional[torch.Tensor],
                terms: Optional[tuple] = None) -> torch.Tensor:
        b = x.shape[0]
        terms = self.budget_terms(budget, x.dtype, terms)
        h = self.hidden(x, terms).transpose(1, 2).reshape(
            b, -1, *hw_shape)
        h = F.adaptive_avg_pool2d(h, self.pool_size).flatten(1)
        logits = F.linear(h, self.out.weight, self.out.bias)
        if terms is not None:
            logits = logits + terms[1]
        return logits.view(b, self.num_tasks, self.depth)


@MODELS.register_module()
class PolicyHead(BaseModule):
    """AdaMTL's block and token selectors for an adaptive Swin.

    One ``BlockSelector`` per stage (reading the stage input) and a
    ``TokenSelector`` run before every block (choosing the tokens that go
    through the block's MLP; attention always sees every token): one per
    block, or with ``shared_token_selectors`` one per stage whose blocks
    share it (AdaMTL's own, ``AdaBasicLayer.tokens_select``).

    Args:
        embed_dims: Channels per stage; filled in by the backbone.
        depths: Blocks per stage; filled in by the backbone.
        task_mode: ``'single'`` (one decision set for all tasks) or
            ``'per_task'`` (one set per task in ``tasks``; the executed
            decision is the union over the tasks being run).
        tasks: Task names, required for ``'per_task'``.
        token_hidden: Width of the token selectors' per-token embedding.
        block_hidden: Width of the block selectors' per-token embedding.
        pool_size: Grid the block selector pools its input to.
        budget_conditioned: Feed each image's target budget to the
            selectors, so one model serves any budget at run time.
        tau: Gumbel-sigmoid temperature (``BudgetScheduleHook`` may
            anneal it).
        noise: Scale of the Gumbel noise in training (0: the training
            decisions are the inference ones; ``BudgetScheduleHook`` may
            anneal it).
        init_logit: Initial bias of the outputs; positive starts the
            policy close to "run everything".
        block_select / token_select: Switch either kind of decision off.
        shared_token_selectors: One token selector per stage, run before
            each of its blocks on that block's input.
    """

    def __init__(self,
                 embed_dims: Sequence[int] = (),
                 depths: Sequence[int] = (),
                 task_mode: str = 'single',
                 tasks: Optional[Sequence[str]] = None,
                 token_hidden: int = 16,
                 block_hidden: int = 16,
                 pool_size: int = 4,
                 budget_conditioned: bool = True,
                 tau: float = 5.0,
                 noise: float = 1.0,
                 init_logit: float = 3.0,
                 block_select: bool = True,
                 token_select: bool = True,
                 shared_token_selectors: bool = False,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if task_mode not in ('single', 'per_task'):
            raise ValueError(f'PolicyHead: task_mode must be "single" or '
                             f'"per_task", got {task_mode!r}')
        if task_mode == 'per_task':
            if not tasks:
                raise ValueError('PolicyHead: task_mode="per_task" needs '
                                 'tasks=[...]')
            self.tasks = check_tasks(tasks, where='PolicyHead.tasks')
        else:
            self.tasks = None
        if len(embed_dims) != len(depths) or not depths:
            raise ValueError(f'PolicyHead: embed_dims {list(embed_dims)} '
                             f'and depths {list(depths)} must be non-empty '
                             f'and of equal length')
        self.task_mode = task_mode
        self.embed_dims = list(embed_dims)
        self.depths = list(depths)
        self.budget_conditioned = budget_conditioned
        self.tau = tau
        # Executed share of block compute at each CALIBRATION_GRID input,
        # measured by calibrate_budget; NaN until then. Saved in
        # checkpoints, read by budget_mode='target'.
        self.register_buffer(
            'budget_curve', torch.full((len(CALIBRATION_GRID), ),
                                       float('nan')))
        if noise < 0:
            raise ValueError(f'PolicyHead: noise must be >= 0, got {noise!r}')
        self.noise = float(noise)
        self.block_select = block_select
        self.token_select = token_select
        self.shared_token_selectors = bool(shared_token_selectors)
        self.token_hidden, self.block_hidden = token_hidden, block_hidden
        self.pool_size = pool_size
        # The last budget terms computed for a key, reused by later
        # forwards with the same budget and weights (a cache).
        self._terms_cache = None
        num_outputs = len(self.tasks) if self.tasks else 1
        self.block_selectors = nn.ModuleList([
            BlockSelector(c, block_hidden, num_outputs, d, pool_size,
                          budget_conditioned, init_logit)
            if block_select else nn.Identity()
            for c, d in zip(self.embed_dims, self.depths)
        ])
        self.token_selectors = nn.ModuleList([
            nn.ModuleList([
                TokenSelector(c, token_hidden, num_outputs,
                              budget_conditioned, init_logit)
                for _ in range(1 if shared_token_selectors else d)
            ]) if token_select else nn.ModuleList()
            for c, d in zip(self.embed_dims, self.depths)
        ])

    def init_weights(self) -> None:
        # The Swin backbone's init re-draws every nn.Linear below it; the
        # selectors get their own init back here.
        for m in self.modules():
            if isinstance(m, _Selector):
                m.reset_parameters()

    def task_index(self, tasks: Optional[Sequence[str]]) -> List[int]:
        """Output columns whose union is executed for ``tasks``."""
        if self.tasks is None:
            return [0]
        if tasks is None:
            return list(range(len(self.tasks)))
        tasks = check_tasks(tasks, self.tasks, where='policy tasks')
        return [self.tasks.index(t) for t in tasks]

    def decide(self, logits: torch.Tensor, task_dim: int,
               index: List[int], noise: bool = True) -> torch.Tensor:
        """Turn logits into 0/1 decisions, the union (OR) over the
        selected tasks.

        Inference: deterministic, ``any_t(z_t > 0)``. Training: per task a
        Gumbel-sigmoid sample ``p_t`` made hard (``p_t > 0.5``), then the
        OR of the per-task hard samples in the forward pass, with the
        straight-through gradient of the soft union
        ``1 - prod_t(1 - p_t)``. With
        ``noise=False`` (or ``self.noise == 0``) the training decisions
        are exactly the inference ones, with gradients.
        """
        logits = self._select(logits, task_dim, index)
        if not self.training:
            keep = logits > 0
            keep = keep.squeeze(task_dim) if keep.shape[task_dim] == 1 \
                else keep.any(dim=task_dim)
            return keep.to(logits.dtype)
        soft = gumbel_sigmoid(logits, self.tau, self.noise if noise else 0.)
        if soft.shape[task_dim] == 1:
            return straight_through(soft.squeeze(task_dim))
        # Forward: the OR of the per-task hard samples. Backward: the
        # gradient of the soft union 1 - prod(1 - p_t), which reaches every
        # task (the OR of hard values has none where two tasks keep).
        hard = (soft > 0.5).any(dim=task_dim).to(soft.dtype)
        union = 1 - (1 - soft).prod(dim=task_dim)
        return hard + (union - union.detach())

    @staticmethod
    def _select(logits: torch.Tensor, task_dim: int,
                index: Union[List[int], torch.Tensor]) -> torch.Tensor:
        """The columns ``index`` (a list, or a long tensor: what a graph
        passes) of ``logits`` along ``task_dim``."""
        if len(index) != logits.shape[task_dim]:
            logits = logits.index_select(
                task_dim, torch.as_tensor(index, device=logits.device))
        return logits

    def _decisions(self, logits, task_dim, index, with_deterministic):
        keep = self.decide(logits, task_dim, index)
        if not with_deterministic:
            return keep
        det = self.decide(logits, task_dim, index, noise=False) \
            if self.training else keep
        return keep, det

    def budget_terms(self, budget: torch.Tensor, key=None):
        """In inference: the :class:`BudgetTerms` of ``budget`` (the whole
        batch), what the budgets add to every selector's units from one
        product for all selectors (each element is the same ``f * w + b``
        as the selector's own ``Linear(1, n)``, so decisions are
        unchanged) instead of three small operations per selector. In
        training or without budget conditioning: ``budget`` itself.

        ``key``: a hashable that determines ``budget``'s values (e.g. the
        number it was filled with, the batch size, device and dtype). With
        it the terms are computed once and reused by later forwards with
        the same key while the budget weights stay unchanged (the same
        parameters, version counters and storage).
        """
        if self.training or not self.budget_conditioned:
            return budget
        selectors = self._budget_selectors()
        if key is not None:
            key = (key, torch.is_autocast_enabled(budget.device.type),
                   torch.get_autocast_dtype(budget.device.type),
                   tuple((id(p), p._version, p.data_ptr())
                         for s in selectors for p in (
                             s.budget_embed.weight, s.budget_embed.bias,
                             s.budget_out.weight)))
        cached = self._terms_cache
        if key is not None and cached is not None and cached[0] == key:
            return cached[1]
        terms = BudgetTerms(budget, self._compute_terms(selectors, budget))
        self._terms_cache = None if key is None else (key, terms)
        return terms

    def _budget_selectors(self) -> List[nn.Module]:
        selectors = [s for s in self.block_selectors
                     if isinstance(s, _Selector)]
        return selectors + [s for stage in self.token_selectors
                            for s in stage]

    @staticmethod
    def _compute_terms(selectors, budget: torch.Tensor) -> dict:
        """Per selector, what ``budget`` adds to its hidden units and to
        its outputs, from one product for all."""
        feature = budget_feature(budget, budget.dtype)
        hidden = F.linear(
            feature, torch.cat([s.budget_embed.weight for s in selectors]),
            torch.cat([s.budget_embed.bias for s in selectors]))
        out = F.linear(feature,
                       torch.cat([s.budget_out.weight for s in selectors]))
        hidden = hidden.split([s.budget_embed.out_features
                               for s in selectors], 1)
        out = out.split([s.budget_out.out_features for s in selectors], 1)
        return {id(s): (h, o) for s, h, o in zip(selectors, hidden, out)}

    def block_decisions(self, stage: int, x: torch.Tensor, hw_shape,
                        budget, index: List[int],
                        with_deterministic: bool = False):
        """(B, depth) keep decisions for the blocks of ``stage``; with
        ``with_deterministic`` also the noise-free decisions (what
        inference would run, with gradients in training)."""
        if not self.block_select:
            ones = x.new_ones(x.shape[0], self.depths[stage])
            return (ones, ones) if with_deterministic else ones
        selector = self.block_selectors[stage]
        budget, terms = split_budget(budget)
        logits = selector(x, hw_shape, budget,
                          terms and terms.of(selector))
        return self._decisions(logits, 1, index, with_deterministic)

    def block_scores(self, stage: int, x: torch.Tensor, hw_shape, budget,
                     index: List[int]) -> torch.Tensor:
        """(B, depth) score of every block of ``stage`` for the selected
        tasks, ``max_t z_t``: a block runs in inference where its score is
        above 0 (what ``budget_mode='cap'`` ranks blocks by)."""
        if not self.block_select:
            return x.new_ones(x.shape[0], self.depths[stage])
        selector = self.block_selectors[stage]
        budget, terms = split_budget(budget)
        logits = selector(x, hw_shape, budget,
                          terms and terms.of(selector))
        return self._select(logits, 1, index).amax(dim=1)

    def token_decisions(self, stage: int, block: int, x: torch.Tensor,
                        budget, index: List[int],
                        with_deterministic: bool = False):
        """(B, L) MLP decisions of the tokens of one block, or None when
        token selection is off; with ``with_deterministic`` a pair, as
        :meth:`block_decisions`."""
        if not self.token_select:
            return (None, None) if with_deterministic else None
        selector = self.token_selectors[stage][
            0 if self.shared_token_selectors else block]
        budget, terms = split_budget(budget)
        logits = selector(x, budget, terms and terms.of(selector))
        return self._decisions(logits, 2, index, with_deterministic)

    # Multiply-adds (mmengine's counter conventions), per image.
    def block_selector_flops(self, stage: int, tokens: int) -> float:
        if not self.block_select:
            return 0.
        c, h, k = self.embed_dims[stage], self.block_hidden, \
            len(self.tasks or [0])
        out = h * self.pool_size**2 * k * self.depths[stage]
        flops = tokens * c * h + tokens * h + out
        if self.budget_conditioned:
            flops += h + k * self.depths[stage]
        return flops

    def token_selector_flops(self, stage: int, tokens: int) -> float:
        if not self.token_select:
            return 0.
        c, h, k = self.embed_dims[stage], self.token_hidden, \
            len(self.tasks or [0])
        flops = tokens * (c * h + h * k)
        if self.budget_conditioned:
            flops += h + k
        return flops
