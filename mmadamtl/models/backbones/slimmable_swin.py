"""A Swin encoder whose attention heads and MLP widths are chosen per
stage at run time (the encoder of "Efficient Controllable Multi-Task
Architectures", Aich et al., ICCV 2023, brought to Swin)."""
import itertools
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmseg.registry import MODELS

from ..layers.importance import reorder_by_importance
from ..layers.slimmable import SlimRunner
from ..utils.swin_cost import SwinCost, swin_cost
from .encoder import NO_CONTROL, Control, constant_stats
from .swin_encoder import SwinEncoder

# Per stage (head fraction, MLP ratio); a sub-network of the encoder.
EncoderConfig = Tuple[Tuple[float, float], ...]
EncoderSpec = Union[str, dict, Sequence]


def _match(value: float, choices: Sequence[float], key: str) -> float:
    for c in choices:
        if abs(float(value) - c) < 1e-3:
            return c
    raise ValueError(f'encoder {key}={value!r} is not one of '
                     f'{[round(c, 4) for c in choices]}')


@MODELS.register_module()
class SlimmableSwinTransformer(SwinEncoder):
    """mmseg's Swin (the package's stage loop) with slimmable widths.

    Per stage, its blocks run a fraction of their attention heads (the
    head dimension stays, so the attention scale stays) and of their MLP
    hidden neurons (``mlp_ratio`` x the stage's width), as prefixes of
    mmseg's weights sliced in mmseg's layouts (see
    ``mmadamtl.models.layers.slimmable``). Embedding widths, LayerNorms,
    patch embedding/merging and the outputs keep their shapes, so Swin
    checkpoints load unchanged, and with every width at its maximum the
    forward is mmseg's (tested bit for bit).

    A sub-network is one ``(head fraction, mlp ratio)`` per stage, given
    to each forward as ``Control(subnet=...)`` (canonical, see
    :meth:`check_config`, which also takes ``'max'``, ``'min'``,
    ``dict(heads=2/3, mlp_ratio=2)`` for every stage or a list of such
    dicts, one per stage); None runs the widest. The encoder keeps no
    sub-network of its own.

    Args:
        head_choices: Head fractions offered; each must give a whole
            number of heads (>= 1) in every stage.
        mlp_ratio_choices: MLP ratios offered, at most the built
            ``mlp_ratio``.
        reorder_importance: After :meth:`init_weights` (which loads a
            ``Pretrained`` ``init_cfg``), permute every block's heads and
            MLP neurons by decreasing weight importance
            (:func:`~mmadamtl.models.layers.reorder_by_importance`), so
            that the narrow prefixes keep the important units of a
            pretrained encoder. The widest encoder computes the same; a
            checkpoint loaded afterwards (``load_from``, a trained
            super-network) replaces the weights as usual.
        Others: ``SwinEncoder``'s.
    """

    def __init__(self, *args,
                 head_choices: Sequence[float] = (1 / 3, 2 / 3, 1.0),
                 mlp_ratio_choices: Sequence[float] = (1, 2, 3, 4),
                 reorder_importance: bool = False,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reorder_importance = bool(reorder_importance)
        self.head_choices = sorted(float(h) for h in head_choices)
        self.mlp_ratio_choices = sorted(float(r) for r in mlp_ratio_choices)
        for s, stage in enumerate(self.stages):
            block = stage.blocks[0]
            heads = block.attn.w_msa.num_heads
            dims = block.attn.w_msa.embed_dims
            for h in self.head_choices:
                n = h * heads
                if not 0 < h <= 1 or abs(n - round(n)) > 1e-6:
                    raise ValueError(
                        f'head_choices: {h} of stage {s}\'s {heads} heads '
                        f'is not a whole number of heads')
            for r in self.mlp_ratio_choices:
                n = r * dims
                if r <= 0 or abs(n - round(n)) > 1e-6 or \
                        round(n) > block.ffn.feedforward_channels:
                    raise ValueError(
                        f'mlp_ratio_choices: {r} x {dims} channels of stage '
                        f'{s} must be a whole number within its '
                        f'{block.ffn.feedforward_channels} MLP neurons')

    def init_weights(self) -> None:
        super().init_weights()
        if self.reorder_importance:
            reorder_by_importance(self)

    @property
    def controls(self):
        """``subnet``: the per-stage widths that run."""
        return frozenset({'subnet'})

    @property
    def max_config(self) -> EncoderConfig:
        return ((self.head_choices[-1], self.mlp_ratio_choices[-1]), ) * \
            len(self.stages)

    @property
    def min_config(self) -> EncoderConfig:
        return ((self.head_choices[0], self.mlp_ratio_choices[0]), ) * \
            len(self.stages)

    def uniform_configs(self) -> List[EncoderConfig]:
        """The stage-uniform sub-networks, smallest head fraction first."""
        return [((h, r), ) * len(self.stages) for h, r in itertools.product(
            self.head_choices, self.mlp_ratio_choices)]

    def stage_choices(self) -> List[Tuple[float, float]]:
        """The (head fraction, mlp ratio) pairs one stage may take."""
        return list(itertools.product(self.head_choices,
                                      self.mlp_ratio_choices))

    def check_config(self, spec: EncoderSpec) -> EncoderConfig:
        """The canonical form of an encoder sub-network (see the class)."""
        if spec is None or spec == 'max':
            return self.max_config
        if spec == 'min':
            return self.min_config
        if isinstance(spec, dict):
            spec = [spec] * len(self.stages)
        if isinstance(spec, str) or len(spec) != len(self.stages):
            raise ValueError(
                f'encoder sub-network: expected \'max\', \'min\', a dict or '
                f'{len(self.stages)} per-stage entries, got {spec!r}')
        config = []
        for s, entry in enumerate(spec):
            if isinstance(entry, dict):
                unknown = set(entry) - {'heads', 'mlp_ratio'}
                if unknown:
                    raise KeyError(f'encoder sub-network stage {s}: unknown '
                                   f'keys {sorted(unknown)} (heads, '
                                   f'mlp_ratio)')
                h = entry.get('heads', self.head_choices[-1])
                r = entry.get('mlp_ratio', self.mlp_ratio_choices[-1])
            else:
                h, r = entry
            config.append((_match(h, self.head_choices, 'heads'),
                           _match(r, self.mlp_ratio_choices, 'mlp_ratio')))
        return tuple(config)

    def stage_widths(self, config: Optional[EncoderConfig] = None
                     ) -> List[Tuple[int, int]]:
        """Per stage ``(heads, hidden neurons)`` of a sub-network (None:
        the widest)."""
        config = self.max_config if config is None else config
        widths = []
        for stage, (h, r) in zip(self.stages, config):
            w_msa = stage.blocks[0].attn.w_msa
            widths.append((int(round(h * w_msa.num_heads)),
                           int(round(r * w_msa.embed_dims))))
        return widths

    def cost(self, img_hw: Sequence[int],
             config: Optional[EncoderConfig] = None) -> SwinCost:
        """Closed-form per-image cost of a sub-network (``swin_cost``)."""
        return swin_cost(self, tuple(img_hw), self.stage_widths(config))

    def encoder_flops(self, img_hw: Sequence[int], tasks=None,
                      config: Optional[EncoderConfig] = None) -> float:
        """Multiply-adds of one image at ``img_hw`` through the sub-network
        ``config`` (None: the widest)."""
        return self.cost(img_hw, config).total

    def encode(self, x: torch.Tensor, control: Control = NO_CONTROL):
        """The sub-network ``control.subnet`` (None: the widest) and its
        closed-form cost."""
        self.check_control(control)
        config = self.check_config(control.subnet)
        outs = self.run_stages(x, SlimRunner(self.stage_widths(config)))
        return outs, constant_stats(
            self.cost(x.shape[2:], config).total, x.shape[0], x.device)
