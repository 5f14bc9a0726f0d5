"""AdaMTL's Swin: the package's Swin encoder, its blocks and MLP tokens
run by the decisions of a policy."""
import contextlib
import functools
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmseg.registry import MODELS

from mmadamtl.utils.host_sync import tracing
from ..layers.adamtl_runners import (BlendRunner, CapturedPieces,
                                     CapturedRunner, CondRunner,
                                     PolicyRunner, SkipRunner,
                                     check_buckets)
from ..layers.block_runner import FullRunner
from ..policies.calibration import policy_budget
from ..policies.random_policy import RandomDecisions
from ..utils.budget import Budget, budget_tensor
from ..utils.precision import as_float32, full_precision
from ..utils.swin_cost import SwinCost
from .encoder import NO_CONTROL, Control, EncoderStats
from .swin_encoder import SwinEncoder


@dataclass
class AdaptiveStats(EncoderStats):
    """What one forward pass executed, per image (first dim B).

    ``encoder_flops`` and ``policy_flops`` are multiply-adds (the policy's
    are included in the encoder's). ``block_fraction`` is the executed
    share of the blocks' compute, FLOPs-weighted (what ``BudgetLoss``
    drives to the budget); ``token_fraction`` the executed share of the
    MLPs' compute. ``block_keep``/``token_keep`` (B, stages) are the
    share of blocks run and of MLP tokens run per stage; ``token_maps``
    per stage (B, h, w) the share of the stage's blocks that ran each
    token's MLP. ``blocks`` (B, total blocks) the block decisions.
    In training these carry straight-through gradients, and
    ``deterministic_fraction`` is the ``block_fraction`` the noise-free
    decisions (what inference runs) would execute, with gradients.
    For count-based losses (AdaMTL's): ``keeps`` (B, blocks) the block
    decisions and ``token_shares`` (B, blocks) each block's share of MLP
    tokens run (zero where skipped), both with gradients, ``widths``
    (blocks,) each block's channels and ``block_tokens`` (blocks,) its
    token count.
    """
    policy_flops: torch.Tensor
    block_fraction: torch.Tensor
    token_fraction: torch.Tensor
    block_keep: torch.Tensor
    token_keep: torch.Tensor
    token_maps: List[torch.Tensor]
    blocks: torch.Tensor
    deterministic_fraction: Optional[torch.Tensor] = None
    keeps: Optional[torch.Tensor] = None
    token_shares: Optional[torch.Tensor] = None
    widths: Optional[torch.Tensor] = None
    block_tokens: Optional[torch.Tensor] = None
    # The request (``Control.budget``/``budget_mode``), for metainfo.
    budget: Optional[float] = None
    budget_mode: Optional[str] = None
    # ``Control.captured``: (B,) the encoder's multiply-adds really run,
    # the bucket padding of the MLP rows included (``encoder_flops`` is
    # the policy's nominal figure).
    run_flops: Optional[torch.Tensor] = None

    def image_meta(self, index: int) -> dict:
        """``policy``: image ``index``'s decisions and what they ran."""
        i = index
        return dict(policy=dict(
            budget=self.budget,
            budget_mode=self.budget_mode,
            encoder_share=float(self.encoder_flops[i]) / self.static_flops,
            policy_gflops=float(self.policy_flops[i]) / 1e9,
            block_fraction=float(self.block_fraction[i]),
            block_keep=self.block_keep[i].tolist(),
            token_keep=self.token_keep[i].tolist(),
            blocks=self.blocks[i].tolist(),
            token_maps=[m[i].cpu().numpy() for m in self.token_maps],
            **({} if self.run_flops is None else dict(
                run_encoder_gflops=float(self.run_flops[i]) / 1e9))))


@MODELS.register_module()
class AdaptiveSwinTransformer(SwinEncoder):
    """Swin Transformer whose blocks and MLP tokens a policy may skip.

    Takes every argument of mmseg's ``SwinTransformer``; its Swin
    parameters keep mmseg's state-dict keys (the policy's live under
    ``policy.``), so mmseg and converted Swin checkpoints load unchanged.

    ``encode(x, control)`` (the encoder contract): with ``policy=None``
    or ``control.budget=None`` it is mmseg's forward (the encoder's
    ``FullRunner``). Otherwise the policy decides per image, for the
    budget (``control.budget`` and ``control.budget_mode``, resolved by
    :meth:`budget_input`) and the tasks being run (``control.tasks``;
    per-task policies take the union), and the stage loop runs each block
    with

    - ``BlendRunner`` in training: Gumbel-sigmoid decisions with
      straight-through gradients; a skipped block or an unselected
      token's MLP is blended away (``x + m * (f(x) - x)``), so no compute
      is saved;
    - ``SkipRunner`` in inference: deterministic decisions, and compute is
      really skipped for any batch size: each block runs only on the
      images that keep it, and its MLP only on the selected tokens.

    It returns the features and an :class:`AdaptiveStats`: what was
    executed per image, summed from the decisions the runner recorded
    (the segmentor's ``loss`` and ``predict`` read it).

    Args:
        policy: A ``PolicyHead`` config (``embed_dims`` and ``depths`` are
            filled in), or None for a static Swin.
    """

    def __init__(self, *args, policy: Optional[dict] = None,
                 token_buckets: Sequence[float] = (0.25, 0.5, 0.75, 1.),
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.token_buckets = check_buckets(token_buckets)
        # ``Control.captured``'s compiled functions, built at its first
        # forward (a cache: their graphs hold the modules' structure, not
        # their weights; dropped when the model is moved or cast).
        self._pieces: Dict[tuple, CapturedPieces] = {}
        # The compiler of the captured mode (None: ``compile_static``;
        # tests give another backend).
        self.captured_compiler = None
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
        # The random-skipping control (set_random_policy), or None.
        self.random_policy: Optional[RandomDecisions] = None
        # Caches: cost vectors per size, the last budget curve inversion.
        self._vectors: Dict[tuple, dict] = {}
        self._inverted: Optional[tuple] = None

    @classmethod
    def complete_config(cls, cfg: dict, tasks: Sequence[str]) -> dict:
        """A ``per_task`` policy without ``tasks`` gets the heads'."""
        policy = cfg.get('policy')
        if policy and policy.get('task_mode') == 'per_task' and \
                not policy.get('tasks'):
            cfg = dict(cfg, policy=dict(policy, tasks=list(tasks)))
        return cfg

    @classmethod
    def static_config(cls, cfg: dict) -> dict:
        """mmseg's ``SwinTransformer`` with the same arguments, no
        policy."""
        cfg = {k: v for k, v in cfg.items() if k != 'policy'}
        return dict(cfg, type='SwinTransformer')

    @property
    def controls(self):
        """With a policy: ``budget`` and ``tasks``; without: none."""
        if self.policy is None:
            return frozenset()
        return frozenset({'budget', 'tasks'})

    def set_random_policy(self, share: Optional[float],
                          seed: int = 0) -> None:
        """Replace the policy's inference decisions by uniform random ones
        executing ``share`` of the blocks' compute on average (the control
        of ``RandomDecisions``); None restores the policy."""
        if share is not None and self.policy is None:
            raise ValueError('set_random_policy needs a policy')
        self.random_policy = None if share is None else RandomDecisions(
            self.policy, share, seed)

    def train(self, mode: bool = True):
        super().train(mode)
        return self

    def init_weights(self) -> None:
        super().init_weights()
        if self.policy is not None:
            self.policy.init_weights()

    def set_policy_temperature(self, tau: float) -> None:
        """The Gumbel-sigmoid temperature of the policy (training)."""
        if self.policy is None:
            super().set_policy_temperature(tau)
        if not tau > 0:
            raise ValueError(f'policy temperature must be > 0, got {tau!r}')
        self.policy.tau = float(tau)

    def budget_input(self, budget: Budget, mode: str = 'target'
                     ) -> Tuple[Budget, Budget]:
        """The policy's budget input and the cap for a requested budget:

        - ``'input'``: ``budget`` is the policy's input, no cap;
        - ``'target'``: the input at which the policy executes ``budget``
          on average (its measured curve inverted, ``policy_budget``);
        - ``'cap'``: as ``'target'``, and ``budget`` is the cap.

        A float's inversion is reused while the budget and the curve (its
        version counter: calibration and loading bump it) stay.
        """
        if budget is None:
            return None, None
        if mode == 'input':
            return budget, None
        cap = budget if mode == 'cap' else None
        if isinstance(budget, torch.Tensor):
            return policy_budget(self.policy, budget), cap
        requested = float(budget)
        if tracing():
            return policy_budget(self.policy,
                                 torch.tensor([requested]))[0], cap
        curve = self.policy.budget_curve
        key = (requested, curve._version, curve.data_ptr())
        if self._inverted is None or self._inverted[0] != key:
            inputs = policy_budget(self.policy, torch.tensor([requested]))
            self._inverted = (key, float(inputs[0]))
        return self._inverted[1], cap

    def encode(self, x: torch.Tensor, control: Control = NO_CONTROL,
               skip_runner: Optional[Callable[..., SkipRunner]] = None
               ) -> Tuple[List[torch.Tensor], AdaptiveStats]:
        """Run the encoder under ``control`` (see the class).

        Args:
            x: Images (B, 3, H, W).
            control: ``budget`` (a float, or one per image; None runs
                every block), ``budget_mode`` and ``tasks`` (None: all
                the policy's tasks). ``budget_mode='cap'`` applies to
                inference only: no image's executed multiply-adds exceed
                ``budget`` x the static encoder's (see ``SkipRunner``).
            skip_runner: The inference runner's class (default
                ``SkipRunner``): tools pass a subclass that times or
                records the blocks, with ``SkipRunner``'s arguments.

        Returns:
            The stage features and an :class:`AdaptiveStats`.
        """
        self.check_control(control)
        cost = self.cost(x.shape[2:])
        if self.policy is None or control.budget is None:
            outs = self.run_stages(x, FullRunner())
            return outs, self._static_stats(x, cost, control)
        budget, cap = self.budget_input(control.budget, control.budget_mode)
        cap = control.cap if control.cap is not None else cap
        # A budget given as a number determines the budget tensor: the
        # policy's budget terms are reused while it and the weights stay.
        given, budget = budget, budget_tensor(budget, x)
        # Nothing made while tracing is cached (its tensors are the
        # trace's).
        key = None if isinstance(given, torch.Tensor) or tracing() else (
            float(given), x.shape[0], x.device, x.dtype)
        index = self.policy.task_index(control.tasks)
        if not self.training and (control.graph or control.captured):
            skip_runner = self._one_graph_runner(control, skip_runner,
                                                 cap, x)
        if self.training:
            if cap is not None:
                raise ValueError('cap applies to inference only')
        elif self.random_policy is not None:
            if cap is not None:
                raise ValueError('the random policy takes no cap')
            self.random_policy.set_cost(cost.attn_total, cost.mlp_total)
        elif cap is not None:
            cap = self._cap(cap, x, cost)
        skip_runner = skip_runner or SkipRunner
        if self.training:
            runner = BlendRunner(self.policy, budget, index)
        elif self.random_policy is not None:
            runner = skip_runner(self.random_policy, budget, index)
        elif control.captured:
            # The captured pieces compute the budget's terms in their
            # graphs.
            runner = skip_runner(self.policy, budget, index, cap)
        else:
            # The budget with its terms for every selector, computed once
            # for the forward or reused from the last with the same
            # budget and weights.
            runner = skip_runner(self.policy,
                                 self.policy.budget_terms(budget, key),
                                 index, cap)
        captured = isinstance(runner, CapturedRunner)
        with runner.pieces.limit(sum(len(s.blocks) for s in self.stages),
                                 len(self.stages), x.shape[0]) \
                if captured else contextlib.nullcontext():
            outs = self.run_stages(x, runner)
        stats = self._executed_stats(runner, cost, tuple(x.shape[2:]))
        if captured:
            vec = self._cost_vectors(cost, tuple(x.shape[2:]), 'cpu')
            extra = runner.padding() @ vec['mlp_per_token']
            stats.run_flops = stats.encoder_flops + extra.to(
                stats.encoder_flops.device)
        stats.budget = None if isinstance(control.budget, torch.Tensor) \
            else float(control.budget)
        stats.budget_mode = control.budget_mode
        return outs, stats

    def _one_graph_runner(self, control: Control, skip_runner, cap, x):
        """The runner of ``Control.graph`` (``CondRunner``) or
        ``Control.captured`` (``CapturedRunner``), refusing what it cannot
        run, naming why."""
        if control.graph and control.captured:
            raise ValueError('Control.graph and Control.captured are two '
                             'ways to run inference: set one')
        field, how, runner = ('graph', 'as a graph', CondRunner) \
            if control.graph else ('captured', 'captured', CapturedRunner)
        if self.random_policy is not None:
            raise ValueError(f'the random policy cannot run {how} '
                             f'(Control.{field}): its decisions are drawn '
                             'on the host')
        if skip_runner is not None:
            raise ValueError(f'Control.{field} runs {runner.__name__}; a '
                             'skip_runner cannot be given with it')
        if control.graph:
            CondRunner.check_cap(cap)
            return CondRunner
        if cap is not None:
            raise ValueError("Control.captured cannot hold a cap "
                             "(budget_mode='cap'): its bucket padding runs "
                             'more than the cap allows; use '
                             "budget_mode='target' or eager inference")
        return functools.partial(
            CapturedRunner,
            pieces=self.captured_pieces(self.policy.task_index(
                control.tasks), x))

    def _apply(self, fn, *args, **kwargs):
        # ``.to``, ``.half``, ``.cuda`` ...: the compiled pieces skip the
        # guards on the modules, so graphs built for the old parameters
        # are dropped, not reused.
        self._pieces.clear()
        return super()._apply(fn, *args, **kwargs)

    def captured_pieces(self, tasks: Sequence[int],
                        x: torch.Tensor) -> CapturedPieces:
        """``Control.captured``'s compiled functions for the task set
        ``tasks`` (the policy's task indices) and inputs like ``x`` (its
        device and dtype, and the autocast state), built once: their
        graphs are chosen by the inputs' shapes alone
        (``CapturedPieces``)."""
        kind = x.device.type
        key = (tuple(tasks), str(x.device), x.dtype,
               torch.is_autocast_enabled(kind),
               torch.get_autocast_dtype(kind))
        if key not in self._pieces:
            self._pieces[key] = CapturedPieces(self.token_buckets,
                                               self.captured_compiler)
        return self._pieces[key]

    def _cap(self, cap: Budget, x: torch.Tensor, cost: SwinCost):
        """``SkipRunner``'s ``(allowance, costs)`` for a cap: what the
        blocks may execute once the fixed parts and the block selectors,
        which always run, are paid."""
        vec = self._cost_vectors(cost, tuple(x.shape[2:]), x.device)
        cap = budget_tensor(cap, x).double()
        fixed = cost.fixed_total + vec['block_selectors']
        allowance = cap * cost.total - fixed
        if bool((allowance < 0).any()):
            raise ValueError(
                f'budget cap {float(cap.min()):g} is below what always runs '
                f'(patch embedding, merging, norms and block selectors: '
                f'{fixed / cost.total:.3f} of the static encoder); use a '
                f'cap of at least {fixed / cost.total:.3f}')
        full = (vec['attn'] + vec['mlp_per_token'] * vec['tokens'] +
                vec['token_selector']).tolist()
        depths = [len(s.blocks) for s in cost.stages]
        costs, start = [], 0
        for d in depths:
            costs.append(full[start:start + d])
            start += d
        return allowance, costs

    def _executed_stats(self, runner: PolicyRunner, cost: SwinCost,
                        img_hw: Tuple[int, int]) -> AdaptiveStats:
        """Executed multiply-adds from the decisions ``runner`` recorded:
        per-block costs as vectors, one product per quantity instead of a
        dozen small operations per block. In float32 with autocast off
        (``full_precision``): the decisions are exact 0/1 values in any
        dtype, the sums of their costs are not."""
        # Inference (SkipRunner) gives its figures on the host, training
        # on the device with gradients.
        keep, tokens, token_maps = runner.executed()  # (B, blocks) each
        with full_precision(keep):
            keep, tokens = as_float32(keep), as_float32(tokens)
            vec = self._cost_vectors(cost, img_hw, keep.device)
            mlp_flops = tokens @ vec['mlp_per_token']
            block_flops = keep @ vec['attn'] + mlp_flops
            policy_flops = vec['block_selectors'] + \
                keep @ vec['token_selector']
            deterministic = None
            if isinstance(runner, BlendRunner):
                det_keep, det_tokens = runner.deterministic()
                deterministic = (det_keep @ vec['attn'] + det_tokens @
                                 vec['mlp_per_token']) / cost.blocks_total
            return AdaptiveStats(
                deterministic_fraction=deterministic,
                keeps=keep,
                token_shares=tokens / vec['tokens'],
                widths=vec['widths'],
                block_tokens=vec['tokens'],
                encoder_flops=cost.fixed_total + block_flops +
                policy_flops,
                policy_flops=policy_flops,
                static_flops=cost.total,
                block_fraction=block_flops / cost.blocks_total,
                token_fraction=mlp_flops / vec['mlp_total'],
                block_keep=keep.detach() @ vec['stage_mean'],
                token_keep=(tokens.detach() / vec['tokens']) @
                vec['stage_mean'],
                token_maps=[as_float32(m) for m in token_maps],
                blocks=keep.detach())

    def _cost_vectors(self, cost: SwinCost, img_hw: Tuple[int, int],
                      device) -> Dict[str, torch.Tensor]:
        """Per-block multiply-adds of ``cost`` as float32 vectors over all
        blocks, and the (blocks, stages) matrix averaging over a stage."""
        key = (img_hw, str(device))
        # While tracing, the vectors are the trace's constants: not kept.
        cache = {} if tracing() else self._vectors
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
                    widths=vec([self.num_features[i] for i, _ in blocks]),
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
                mlp_total=float(cost.mlp_total))
        return cache[key]

    def _static_stats(self, x: torch.Tensor, cost: SwinCost,
                      control: Control) -> AdaptiveStats:
        batch = x.shape[0]

        def ones(*shape):
            return torch.ones(batch, *shape, dtype=torch.float32,
                              device=x.device)

        stages = len(cost.stages)
        return AdaptiveStats(
            encoder_flops=ones() * cost.total,
            policy_flops=ones() * 0,
            static_flops=cost.total,
            block_fraction=ones(),
            token_fraction=ones(),
            block_keep=ones(stages),
            token_keep=ones(stages),
            token_maps=[ones(*s.hw) for s in cost.stages],
            blocks=ones(len(cost.blocks)),
            budget=None,
            budget_mode=control.budget_mode)
