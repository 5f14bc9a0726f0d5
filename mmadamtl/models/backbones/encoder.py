"""The encoder contract: what the segmentors ask of every encoder.

Every encoder of the package (the static :class:`SwinEncoder`, AdaMTL's
:class:`AdaptiveSwinTransformer`, :class:`MTLoRASwinTransformer` and the
controllable model's :class:`SlimmableSwinTransformer`) is a
:class:`MultiTaskEncoder`; any other mmseg backbone (e.g. mmseg's own
``SwinTransformer``) is seen through :class:`ForeignEncoder`. The
segmentor builds one :class:`Control` per forward from its ``test_cfg``
(or the ``runtime(...)`` block, or a training iteration's budgets) and
passes it down; nothing the forward does is left behind in a module::

    feats, stats = encoder.encode(x, control)   # stats: EncoderStats
    feats = encoder(x, control)                 # mmseg's call, no stats

What each encoder honours of the control (``encoder.controls``):

============================  =========================================
encoder                       control fields
============================  =========================================
static (``SwinEncoder``)      none: every block runs
AdaMTL, with a policy         ``budget``, ``budget_mode``, ``tasks``
MTLoRA, with task adapters    ``tasks`` (the task streams run)
slimmable                     ``subnet`` (per-stage widths)
============================  =========================================

A control field an encoder cannot honour is refused where it is set
(``check_control``), naming the encoder.
"""
from dataclasses import dataclass, field, replace
from typing import Dict, FrozenSet, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..utils.budget import Budget

# The budget modes of AdaMTL's control (see ``Control.budget_mode``).
BUDGET_MODES = ('target', 'cap', 'input')


@dataclass(frozen=True)
class Control:
    """What one forward pass runs: the request, never module state.

    Attributes:
        budget: AdaMTL: the share of the encoder blocks' compute to run,
            in (0, 1] (a float, or a (B,) tensor of policy inputs in
            training); None runs every block. (The controllable model's
            budget, a share of the widest *model's* GFLOPs, is resolved
            by its search into ``subnet``/``decoders`` before it reaches
            the encoder.)
        budget_mode: How AdaMTL meets ``budget``: ``'target'`` (the mean
            over a data set, through the policy's measured budget curve),
            ``'cap'`` (also no image above it) or ``'input'`` (the
            policy's raw input).
        cap: AdaMTL inference: a share of the static encoder's
            multiply-adds no image may exceed, besides the budget
            (``budget_mode='cap'`` sets it to the budget).
        tasks: The tasks being run (None: all).
        subnet: A slimmable encoder's sub-network (canonical per-stage
            ``(head fraction, mlp ratio)``), None: the widest.
        decoders: Slimmable decoders' widths per task (0: not run), None:
            the decoders run at their only width.
        graph: AdaMTL inference: take the decisions inside the graph
            (``CondRunner``: ``torch.cond`` per image and block; traced,
            no host read), which ``torch.export`` and the ONNX exporter
            keep, instead of on the host (``SkipRunner``). The same
            decisions and outputs. Training (which blends, skipping
            nothing) and the other encoders ignore it.
        captured: AdaMTL inference in shapes from a fixed set
            (``CapturedRunner``): ``SkipRunner``'s decisions, each
            executed block's MLP tokens padded up to one of the encoder's
            ``token_buckets``, the work between two host reads (patch
            embedding, blocks, token selectors, stage ends with the next
            stage's block decisions) run as compiled functions built once
            per shape (``compile_static``). The same outputs;
            ``AdaptiveStats.run_flops`` counts the padding.
            Training and the other encoders ignore it.
    """
    budget: Budget = None
    budget_mode: str = 'target'
    cap: Budget = None
    tasks: Optional[Tuple[str, ...]] = None
    subnet: Optional[tuple] = None
    decoders: Optional[Dict[str, float]] = field(default=None, hash=False)
    graph: bool = False
    captured: bool = False

    def __post_init__(self) -> None:
        if self.budget_mode not in BUDGET_MODES:
            raise ValueError(f'budget_mode must be one of {BUDGET_MODES}, '
                             f'got {self.budget_mode!r}')
        if self.tasks is not None and not isinstance(self.tasks, tuple):
            object.__setattr__(self, 'tasks', tuple(self.tasks))

    def replace(self, **changes) -> 'Control':
        """A copy with ``changes``."""
        return replace(self, **changes)

    def used(self) -> FrozenSet[str]:
        """The fields set to something other than their defaults."""
        used = set()
        if self.budget is not None or self.cap is not None:
            used.add('budget')
        if self.subnet is not None:
            used.add('subnet')
        return frozenset(used)


NO_CONTROL = Control()


@dataclass
class EncoderStats:
    """What one encoder forward executed, per image (first dim B).

    Attributes:
        encoder_flops: (B,) float32 multiply-adds (mmengine's counter's
            convention) of each image's pass through the encoder.
        static_flops: Multiply-adds of the full encoder on one image.
    """
    encoder_flops: torch.Tensor
    static_flops: float

    def image_meta(self, index: int) -> dict:
        """What image ``index`` executed, for its sample's metainfo
        beyond ``encoder_gflops`` (e.g. AdaMTL's ``policy``)."""
        return {}


def constant_stats(flops: float, batch: int, device) -> EncoderStats:
    """Stats of an encoder whose cost depends on the input size only."""
    return EncoderStats(
        encoder_flops=torch.full((batch, ), float(flops),
                                 dtype=torch.float32, device=device),
        static_flops=float(flops))


class MultiTaskEncoder:
    """The contract every encoder of the package implements (a mixin of
    an ``nn.Module``).

    - ``encode(x, control) -> (features, EncoderStats)``: the stage
      features (a list, or ``{task: list}`` for per-task streams) and what
      each image executed; changes no module state.
    - ``forward(x, control=None)``: the features alone (mmseg's call).
    - ``controls``: the :class:`Control` fields it honours;
      ``check_control`` refuses the others.
    - ``complete_config(cfg, tasks)`` (class method): fill the settings
      that depend on the heads' tasks into the encoder's config before it
      is built (AdaMTL's per-task policy, MTLoRA's task adapters).
    - ``static_config(cfg)`` (class method): the config of the static
      encoder with the same architecture and base weights (the
      reference of an efficiency claim).
    - ``set_policy_temperature(tau)``: the training schedule's hook
      (AdaMTL only; the others refuse it).
    """

    # The Control fields this encoder honours.
    controls: FrozenSet[str] = frozenset()

    def encode(self, x: torch.Tensor, control: Control = NO_CONTROL):
        raise NotImplementedError

    def forward(self, x: torch.Tensor, control: Optional[Control] = None):
        return self.encode(x, NO_CONTROL if control is None else control)[0]

    @classmethod
    def complete_config(cls, cfg: dict, tasks: Sequence[str]) -> dict:
        """``cfg`` with the settings that follow from the heads' tasks."""
        return cfg

    @classmethod
    def static_config(cls, cfg: dict) -> dict:
        """The config of this encoder's static counterpart (itself for a
        static encoder)."""
        return cfg

    def check_control(self, control: Control) -> Control:
        """``control`` if this encoder can honour it.

        Raises:
            ValueError: Naming the field and the encoder.
        """
        refused = sorted(control.used() - set(self.controls))
        if refused:
            name = self.encoder_name()
            hint = dict(budget='an adaptive backbone (e.g. '
                        'AdaptiveSwinTransformer with a policy)',
                        subnet='a slimmable backbone '
                        '(SlimmableSwinTransformer)')
            raise ValueError(
                f'{refused[0]}={getattr(control, refused[0])!r} needs '
                f'{hint[refused[0]]}; {name} always runs every block')
        return control

    def encoder_name(self) -> str:
        """The encoder's class name, for messages."""
        return type(self).__name__

    def set_policy_temperature(self, tau: float) -> None:
        """The Gumbel-sigmoid temperature of an adaptive encoder's
        policy."""
        raise ValueError(f'set_policy_temperature needs an adaptive '
                         f'backbone (AdaptiveSwinTransformer with a '
                         f'policy), got {self.encoder_name()}')


class ForeignEncoder(MultiTaskEncoder):
    """Any other mmseg backbone seen through the contract: it runs in full
    (it honours no control), its cost counted once per input size by
    ``counter`` (closed form for a Swin, mmengine's counter otherwise).
    It is not a module, so the backbone's state-dict keys stay as they
    are."""

    def __init__(self, module: nn.Module, counter=None) -> None:
        from ..utils.complexity import ComplexityCounter
        self.module = module
        self.counter = ComplexityCounter() if counter is None else counter

    def encoder_name(self) -> str:
        return type(self.module).__name__

    def encode(self, x: torch.Tensor, control: Control = NO_CONTROL):
        self.check_control(control)
        feats = self.module(x)
        flops = self.counter.module_flops(self.module, x[:1], 'backbone')
        return feats, constant_stats(flops, x.shape[0], x.device)


def as_encoder(module: nn.Module, counter=None) -> MultiTaskEncoder:
    """``module`` itself if it implements the contract, else a
    :class:`ForeignEncoder` around it (its cost cached in ``counter``, a
    ``ComplexityCounter``)."""
    if isinstance(module, MultiTaskEncoder):
        return module
    return ForeignEncoder(module, counter)


def _encoder_class(cfg) -> Optional[type]:
    """The contract class an encoder config builds, or None."""
    from mmseg.registry import MODELS
    if not isinstance(cfg, dict):
        return None
    cls = cfg.get('type')
    if isinstance(cls, str):
        cls = MODELS.get(cls)
    if isinstance(cls, type) and issubclass(cls, MultiTaskEncoder):
        return cls
    return None


def complete_encoder_config(cfg, tasks: Sequence[str]):
    """An encoder config (a dict with ``type``) completed from the heads'
    tasks (``MultiTaskEncoder.complete_config``); anything else as it
    is."""
    cls = _encoder_class(cfg)
    if cls is None:
        return cfg
    return cls.complete_config(dict(cfg), list(tasks))


def static_encoder_config(cfg):
    """The config of the static counterpart of an encoder config
    (``MultiTaskEncoder.static_config``); anything else as it is."""
    cls = _encoder_class(cfg)
    return cfg if cls is None else cls.static_config(dict(cfg))
