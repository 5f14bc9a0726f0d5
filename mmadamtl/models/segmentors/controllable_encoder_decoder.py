"""One trained model, any compute budget and task preference after
deployment ("Efficient Controllable Multi-Task Architectures", Aich et
al., ICCV 2023, on the package's Swin encoder)."""
import contextlib
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmadamtl.utils import check_tasks

from ..backbones.encoder import Control
from ..heads.slimmable_decoder import SlimmableAdaMTLDecoder
from ..utils.budget import check_budget
from ..utils.controllable_search import (LookupTable, SearchResult,
                                         check_preference, decoder_widths,
                                         search_subnet)
from .multi_task_encoder_decoder import _UNCHANGED, MultiTaskEncoderDecoder

SANDWICH_DEFAULTS = dict(num_random=2, dirichlet=0.2,
                         distill=dict(type='CIKDLoss', loss_weight=1.0),
                         predict_distill=None,
                         decoder_sampling='preference')
# How the random sub-networks' decoder widths are drawn.
DECODER_SAMPLINGS = ('preference', 'uniform')


@MODELS.register_module()
class ControllableEncoderDecoder(MultiTaskEncoderDecoder):
    """A slimmable shared encoder (``SlimmableSwinTransformer``) and
    slimmable task decoders (``SlimmableAdaMTLDecoder``) trained once as a
    super-network; at run time a compute budget and a task preference
    choose the sub-network.

    **Sub-networks.** :meth:`set_subnet` sets the sub-network inference
    runs by default: the encoder's per-stage widths and each task's
    decoder width (0: the task does not run). It is the segmentor's
    setting: every forward hands the widths down as arguments
    (``Control(subnet=..., decoders=...)``, see :meth:`control`), and
    no encoder or decoder keeps one. ``test_cfg`` picks what inference
    runs:

    - ``subnet=dict(encoder=..., decoders={task: width})``: that one;
    - ``preference=dict(semseg=0.5, depth=0.3, ...)`` and/or ``budget``
      (in (0, 1]: the share of the widest *model's* GFLOPs, decoders
      included; AdaMTL's budget is a share of the encoder blocks'
      compute), with
      ``lookup_table`` (JSON from ``tools/controllable.py table``): the
      configuration :func:`search_subnet` finds for the input's size
      (decoders by preference, the most preferred widest; the encoder
      that maximises the preference-weighted score within the budget).
      Without a budget the encoder is the widest; without a preference
      every task counts the same;
    - ``captured=True``: the heads run compiled at the sub-network's
      decoder widths (as the static model's, see
      :class:`MultiTaskEncoderDecoder`); the slimmable encoder runs
      eager, on narrower views of the widest weights (``tools/deploy.py``
      makes a sub-network a physically narrow static model, see
      docs/deploy.md). For serving a fixed sub-network: each new task set
      or set of widths compiles one more head graph, and past dynamo's
      recompile limit the forward raises ``CapturedLimitError``.

    Every prediction's metainfo holds the executed ``gflops`` /
    ``encoder_gflops`` of the configuration that ran (closed form for the
    encoder, mmengine's counter for each decoder at its width) and
    ``controllable`` (the configuration, the budget and preference asked
    for, and the budget's GFLOPs).

    **Training** (:meth:`train_step`): the sandwich rule: per iteration
    the widest, the narrowest and ``num_random`` random sub-networks run
    on the batch, their gradients accumulate and one optimizer step
    follows. Random encoders draw each stage's widths uniformly. Random
    decoder widths (``decoder_sampling``) follow a task preference drawn
    from Dirichlet(``dirichlet``) through the deployment rule
    (``'preference'``, the default), or are drawn per task uniformly from
    the widths the widest and narrowest passes leave out (``'uniform'``;
    from all widths when there are only two), so that every width trains
    about equally often. Every sub-network but the widest adds the CI-KD
    loss (``distill``) of its stage features against the widest's,
    detached, and with ``predict_distill`` (a loss config such as
    ``dict(type='PredictionDistillLoss', loss_weight=1.0)``; None, the
    default: off) the distillation of its task outputs towards the
    widest's, detached. The draws come from torch's global generator,
    which ``IterSeedHook`` seeds per iteration, so a resumed run draws
    what the uninterrupted one drew.
    ``train_cfg=dict(sandwich=dict(num_random=2, dirichlet=0.2,
    distill=dict(type='CIKDLoss', loss_weight=1.0), predict_distill=None,
    decoder_sampling='preference'))``.
    Under DDP use ``model_wrapper_cfg=dict(type='SandwichDDP',
    find_unused_parameters=True)``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if 'subnet' not in self.encoder.controls:
            raise TypeError(f'{type(self).__name__} needs a slimmable '
                            f'backbone (SlimmableSwinTransformer), got '
                            f'{self.encoder.encoder_name()}')
        for task in self.tasks:
            if not isinstance(self.decode_head.decoders[task],
                              SlimmableAdaMTLDecoder):
                raise TypeError(
                    f'{type(self).__name__}: decoder of {task!r} is not '
                    f'slimmable (use SlimmableAdaMTLDecoder)')
        widths = {tuple(d.widths) for d in self.decode_head.decoders.values()}
        if len(widths) != 1:
            raise ValueError(f'every task decoder needs the same widths, got '
                             f'{sorted(widths)}')
        self.widths = list(widths.pop())
        unknown = set(self.train_cfg.get('sandwich', {})) - set(
            SANDWICH_DEFAULTS)
        if unknown:
            raise KeyError(f'train_cfg.sandwich: unknown keys '
                           f'{sorted(unknown)} (known: '
                           f'{sorted(SANDWICH_DEFAULTS)})')
        self.sandwich = dict(SANDWICH_DEFAULTS,
                             **self.train_cfg.get('sandwich', {}))
        if int(self.sandwich['num_random']) < 0 or \
                not float(self.sandwich['dirichlet']) > 0:
            raise ValueError(f'train_cfg.sandwich: num_random >= 0 and '
                             f'dirichlet > 0 needed, got {self.sandwich}')
        if self.sandwich['decoder_sampling'] not in DECODER_SAMPLINGS:
            raise ValueError(f'train_cfg.sandwich.decoder_sampling must be '
                             f'one of {DECODER_SAMPLINGS}, got '
                             f'{self.sandwich["decoder_sampling"]!r}')
        if self.kd_loss is not None:
            raise ValueError(
                'train_cfg.distill (a static teacher checkpoint) is not '
                'used by the controllable model, whose teacher is its '
                'widest sub-network: train_cfg.sandwich.predict_distill')
        self.distill = MODELS.build(self.sandwich['distill'])
        self.predict_distill = None if self.sandwich['predict_distill'] is \
            None else MODELS.build(self.sandwich['predict_distill'])
        # The sandwich step's teachers (the widest sub-network's features
        # and, with predict_distill, its raw task outputs), detached.
        self._teacher: Optional[List[torch.Tensor]] = None
        self._teacher_outputs: Optional[Dict[str, torch.Tensor]] = None
        self._last_feats: Optional[List[torch.Tensor]] = None
        self._last_outputs: Optional[Dict[str, torch.Tensor]] = None
        self._table: Optional[LookupTable] = None
        self._searched: Dict[tuple, SearchResult] = {}
        self._shapes: Dict[tuple, list] = {}
        unknown = set(self.test_cfg) - {'subnet', 'budget', 'preference',
                                        'lookup_table', 'tasks',
                                        'check_finite', 'captured'}
        if unknown:
            raise KeyError(f'test_cfg: unknown keys {sorted(unknown)} for '
                           f'{type(self).__name__} (subnet, budget, '
                           f'preference, lookup_table, tasks, '
                           f'check_finite, captured)')
        self.set_subnet(**dict(self.test_cfg.get('subnet') or {}))
        self.set_control(self.test_cfg.get('budget'),
                         self.test_cfg.get('preference'))

    # ------------------------------------------------------------------
    # Sub-networks
    def set_budget(self, budget: Optional[float]) -> None:
        """Inference budget: the share of the widest model's GFLOPs, in
        (0, 1]; None: the widest encoder."""
        self.budget = check_budget(budget)
        self._searched = {}

    def set_train_tasks(self, tasks: Optional[Sequence[str]],
                        all_losses: bool = False) -> None:
        """As the base class's, without ``all_losses``: the sandwich step
        trains the tasks it is given (refused rather than freezing
        decoders whose losses it would not train)."""
        if all_losses and tasks is not None:
            raise ValueError(
                'TaskAlternationHook(all_task_losses=True) is not supported '
                'by the controllable model (its sandwich step trains only '
                'the turn\'s task); use all_task_losses=False')
        super().set_train_tasks(tasks)

    def set_control(self, budget: Optional[float] = None,
                    preference: Optional[Dict[str, float]] = None) -> None:
        """Run inference at ``budget`` and ``preference`` (see the class);
        both None: the sub-network set by :meth:`set_subnet`."""
        self.set_budget(budget)
        self.preference = None if preference is None else check_preference(
            dict(preference), self.tasks)

    @property
    def controlled(self) -> bool:
        return self.budget is not None or self.preference is not None

    def check_subnet(self, encoder='max',
                     decoders: Optional[Dict[str, float]] = None) -> dict:
        """The canonical form of a sub-network: ``encoder`` (``'max'``,
        ``'min'``, ``dict(heads=..., mlp_ratio=...)`` or one such per
        stage) and the decoder widths ``decoders`` (task -> multiplier; 0
        switches the task off; tasks not named run at their widest, or
        are off if ``test_cfg.tasks`` leaves them out)."""
        decoders = dict(decoders or {})
        if decoders:
            check_tasks(decoders, self.tasks, where='set_subnet decoders')
        enc = self.backbone.check_config(encoder)
        # test_cfg.tasks: the tasks not listed are off unless named.
        listed = self.test_cfg.get('tasks') or self.tasks
        widths = {}
        for task in self.tasks:
            w = float(decoders.get(
                task, self.widths[-1] if task in listed else 0.0))
            if w != 0 and w not in self.widths:
                raise ValueError(f'set_subnet: decoder width of {task!r} '
                                 f'must be 0 or one of {self.widths}, got '
                                 f'{decoders[task]!r}')
            widths[task] = w
        if not any(widths.values()):
            raise ValueError('set_subnet: every decoder is off')
        return dict(encoder=enc, decoders=widths)

    def set_subnet(self, encoder='max',
                   decoders: Optional[Dict[str, float]] = None) -> dict:
        """Run the sub-network :meth:`check_subnet` makes of the arguments
        by default from now on (the tasks with a decoder width become the
        active ones). Returns the configuration, canonical."""
        self.subnet = self.check_subnet(encoder, decoders)
        widths = self.subnet['decoders']
        self.set_active_tasks([t for t in self.tasks if widths[t]])
        return self.subnet

    def control(self, img_hw: Optional[Sequence[int]] = None) -> Control:
        """The sub-network inference runs at the current settings, as a
        :class:`Control`: under a budget or a preference the one
        :meth:`search` finds for ``img_hw`` (its tasks those with a
        decoder width), else the one :meth:`set_subnet` set (its tasks the
        active ones)."""
        if self.controlled:
            if img_hw is None:
                raise ValueError('a budget or a preference needs the input '
                                 'size to search the sub-network')
            found = self.search(img_hw, self.budget, self.preference)
            subnet = self.check_subnet(found.encoder, found.decoders)
            return self.subnet_control(
                subnet, [t for t in self.tasks if subnet['decoders'][t]])
        return self.subnet_control(self.subnet, self.active_tasks)

    def subnet_control(self, subnet: dict, tasks: Sequence[str]) -> Control:
        """The :class:`Control` running ``subnet`` (canonical, see
        :meth:`check_subnet`) on ``tasks`` (a task switched off there runs
        at its widest if asked for)."""
        widths = {t: w or self.widths[-1]
                  for t, w in subnet['decoders'].items()}
        return Control(tasks=tuple(tasks), subnet=subnet['encoder'],
                       decoders={t: widths[t] if t in tasks else 0.0
                                 for t in self.tasks},
                       captured=self.captured)

    @contextlib.contextmanager
    def runtime(self, budget=_UNCHANGED, tasks=_UNCHANGED,
                budget_mode=_UNCHANGED, preference=_UNCHANGED,
                subnet=_UNCHANGED, captured=_UNCHANGED
                ) -> Iterator['ControllableEncoderDecoder']:
        """Run inference with any of ``budget``/``preference`` (as
        :meth:`set_control`), ``subnet`` (a dict of :meth:`set_subnet`'s
        arguments), ``tasks`` and ``captured`` (as ``test_cfg.captured``:
        the heads at the sub-network's decoder widths run compiled; the
        slimmable encoder runs as it is) inside the ``with`` block; every
        setting (the sub-network, the decoders' widths, the active tasks,
        the budget, the preference and the captured flag) is restored
        after it::

            with model.runtime(budget=0.5, preference=dict(semseg=2)):
                model.predict(inputs)
        """
        saved = (self.subnet, self.active_tasks, self.budget,
                 self.preference)
        try:
            if subnet is not _UNCHANGED:
                self.set_subnet(**dict(subnet or {}))
            if budget is not _UNCHANGED or preference is not _UNCHANGED:
                self.set_control(
                    self.budget if budget is _UNCHANGED else budget,
                    self.preference if preference is _UNCHANGED
                    else preference)
            with super().runtime(tasks=tasks, budget_mode=budget_mode,
                                 captured=captured):
                yield self
        finally:
            self._restore(saved)

    def _restore(self, saved) -> None:
        subnet, active, budget, preference = saved
        self.subnet = subnet
        self.active_tasks = active
        if (budget, preference) != (self.budget, self.preference):
            self.set_control(budget, preference)

    # ------------------------------------------------------------------
    # Costs and search
    def feature_shapes(self, img_hw: Sequence[int]) -> list:
        """Shapes (1, C, h, w) of the encoder's outputs for ``img_hw``."""
        key = tuple(int(v) for v in img_hw)
        if key not in self._shapes:
            p = next(self.parameters())
            x = torch.zeros(1, 3, *key, dtype=p.dtype, device=p.device)
            was_training = self.backbone.training
            # Eval: a forward in training mode would draw drop-path noise
            # from the global generator.
            self.backbone.eval()
            try:
                with torch.no_grad():
                    feats = self.backbone(
                        x, Control(subnet=self.backbone.min_config))
            finally:
                self.backbone.train(was_training)
            self._shapes[key] = [tuple(f.shape) for f in feats]
        return self._shapes[key]

    def width_flops(self, task: str, width: float,
                    img_hw: Sequence[int]) -> float:
        """Multiply-adds of ``task``'s decoder at ``width`` for an input of
        size ``img_hw`` (mmengine's counter, once per width and size)."""
        if not width:
            return 0.0
        decoder = self.decode_head.decoders[task]
        p = next(self.parameters())
        feats = [torch.zeros(s, dtype=p.dtype, device=p.device)
                 for s in self.feature_shapes(img_hw)]
        was_training = decoder.training
        # Eval: traced in training mode its BatchNorms would update.
        decoder.eval()
        try:
            return self.decoder_flops(task, feats, float(width))
        finally:
            decoder.train(was_training)

    def subnet_flops(self, img_hw: Sequence[int], encoder=None,
                     decoders: Optional[Dict[str, float]] = None) -> float:
        """Multiply-adds of one image through a configuration (default:
        the current one); decoders not named run at their widest."""
        enc = self.backbone.check_config(
            self.subnet['encoder'] if encoder is None else encoder)
        decoders = self.subnet['decoders'] if decoders is None else {
            t: decoders.get(t, self.widths[-1]) for t in self.tasks}
        return self.backbone.encoder_flops(img_hw, config=enc) + sum(
            self.width_flops(t, w, img_hw) for t, w in decoders.items())

    def max_flops(self, img_hw: Sequence[int]) -> float:
        """Multiply-adds of the widest model, every task running."""
        return self.subnet_flops(img_hw, 'max',
                                 {t: self.widths[-1] for t in self.tasks})

    @property
    def lookup_table(self) -> LookupTable:
        if self._table is None:
            path = self.test_cfg.get('lookup_table')
            if not path:
                raise ValueError(
                    'a budget needs test_cfg.lookup_table (the JSON written '
                    'by tools/controllable.py table)')
            self.set_lookup_table(LookupTable.load(path))
        return self._table

    def set_lookup_table(self, table: LookupTable) -> None:
        """Use ``table`` for the budget search (checked against the
        model)."""
        missing = [t for t in self.tasks if t not in table.tasks]
        if missing:
            raise ValueError(f'lookup table has no scores for tasks '
                             f'{missing}')
        if table.widths != self.widths:
            raise ValueError(f'lookup table widths {table.widths} differ '
                             f'from the decoders\' {self.widths}')
        for enc in table.encoders:
            self.backbone.check_config(enc)
        self._table = table
        self._searched = {}

    def search(self, img_hw: Sequence[int], budget: Optional[float] = None,
               preference: Optional[Dict[str, float]] = None
               ) -> SearchResult:
        """The configuration for ``budget`` and ``preference`` (see the
        class) at input size ``img_hw``."""
        pref = check_preference(preference or {t: 1.0 for t in self.tasks},
                                self.tasks)
        key = (tuple(int(v) for v in img_hw), budget,
               tuple(sorted(pref.items())))
        if key in self._searched:
            return self._searched[key]
        if budget is None:
            decs = decoder_widths(pref, self.widths)
            flops = self.subnet_flops(img_hw, 'max', decs)
            result = SearchResult(self.backbone.max_config, decs, 0.0, flops,
                                  self.max_flops(img_hw))
        else:
            result = search_subnet(
                self.lookup_table, pref, budget,
                lambda e, d: self.subnet_flops(img_hw, e, d),
                self.max_flops(img_hw))
        self._searched[key] = result
        return result

    # ------------------------------------------------------------------
    # Inference
    def _set_complexity(self, inputs: torch.Tensor, feats, stats,
                        control: Control,
                        data_samples: List[SegDataSample]) -> None:
        """The base class's executed GFLOPs (this sub-network's encoder in
        closed form, each running decoder counted at its width), plus the
        configuration and the request in ``metainfo['controllable']``."""
        super()._set_complexity(inputs, feats, stats, control, data_samples)
        hw = inputs.shape[2:]
        top = self.max_flops(hw)
        meta = dict(controllable=dict(
            encoder=[list(s) for s in control.subnet],
            decoders=dict(control.decoders),
            budget=self.budget,
            preference=self.preference,
            budget_gflops=None if self.budget is None else
            self.budget * top / 1e9,
            max_gflops=top / 1e9))
        for sample in data_samples:
            sample.set_metainfo(meta)

    # ------------------------------------------------------------------
    # Training
    def encode(self, inputs: torch.Tensor,
               control: Optional[Control] = None):
        feats, stats = super().encode(inputs, control)
        if self.training:
            # The sandwich step's CI-KD teacher (the widest's features).
            self._last_feats = feats
        return feats, stats

    def loss(self, inputs: torch.Tensor,
             data_samples: List[SegDataSample]) -> dict:
        """Task losses of the current sub-network, plus ``loss_cikd``
        while a teacher (the widest sub-network's features) is set, and
        ``<task>.loss_pkd`` (``predict_distill``) while the widest's
        outputs are."""
        self.check_inputs(inputs, data_samples, 'loss',
                          self.train_cfg.get('check_finite', True))
        tasks = [t for t in (self.train_tasks or self.tasks)
                 if t in self.active_tasks]
        control = self.subnet_control(self.subnet, self.active_tasks)
        feats = self.extract_feat(inputs, control)
        outputs = self.decode_head(feats, tasks, control.decoders)
        losses = self.decode_head.loss_by_outputs(outputs, data_samples,
                                                  feats)
        if self.training and self.predict_distill is not None:
            # The sandwich step's prediction teacher (the widest's).
            self._last_outputs = outputs
        if self._teacher is not None:
            losses[self.distill.loss_name] = self.distill(
                feats, self._teacher)
        if self._teacher_outputs is not None:
            losses.update(self.predict_distill(outputs,
                                               self._teacher_outputs))
        return losses

    def sample_subnets(self) -> List[Tuple[str, dict]]:
        """The sandwich of one iteration: widest, narrowest and
        ``num_random`` random sub-networks (torch's global generator)."""
        subnets = [('max', dict(encoder='max', decoders={
            t: self.widths[-1] for t in self.tasks})),
                   ('min', dict(encoder='min', decoders={
                       t: self.widths[0] for t in self.tasks}))]
        choices = self.backbone.stage_choices()
        dirichlet = torch.distributions.Dirichlet(
            torch.full((len(self.tasks), ), float(self.sandwich['dirichlet'])))
        for k in range(int(self.sandwich['num_random'])):
            picks = torch.randint(len(choices), (len(self.backbone.stages), ))
            subnets.append((f'rand{k}', dict(
                encoder=[choices[i] for i in picks.tolist()],
                decoders=self._sample_decoders(dirichlet))))
        return subnets

    def _sample_decoders(self, dirichlet) -> Dict[str, float]:
        """A random sub-network's decoder widths (``decoder_sampling``,
        see the class)."""
        if self.sandwich['decoder_sampling'] == 'uniform':
            # The widest and narrowest passes train the extreme widths
            # every iteration already.
            inner = self.widths[1:-1] or self.widths
            picks = torch.randint(len(inner), (len(self.tasks), )).tolist()
            return {t: inner[i] for t, i in zip(self.tasks, picks)}
        r = dirichlet.sample().tolist()
        pref = {t: max(v, 1e-12) for t, v in zip(self.tasks, r)}
        return decoder_widths(pref, self.widths)

    def train_step(self, data, optim_wrapper) -> Dict[str, torch.Tensor]:
        return self.sandwich_step(data, optim_wrapper, self)

    def sandwich_step(self, data, optim_wrapper, runner_model
                      ) -> Dict[str, torch.Tensor]:
        """One sandwich iteration (see the class); ``runner_model`` is the
        model the forward passes go through (``self`` or its DDP
        wrapper, whose gradients sync on the last backward only)."""
        saved = self.subnet
        subnets = self.sample_subnets()
        log_vars: Dict[str, torch.Tensor] = {}
        total = 0.
        try:
            with optim_wrapper.optim_context(runner_model):
                data = self.data_preprocessor(data, True)
            for k, (name, subnet) in enumerate(subnets):
                self.set_subnet(**subnet)
                last = k == len(subnets) - 1
                sync = contextlib.nullcontext() if last or not hasattr(
                    runner_model, 'no_sync') else runner_model.no_sync()
                with sync:
                    with optim_wrapper.optim_context(runner_model):
                        losses = runner_model(**data, mode='loss')
                    loss, parts = self.parse_losses(losses)
                    optim_wrapper.backward(loss / len(subnets))
                if k == 0:
                    self._teacher = [f.detach() for f in self._last_feats]
                    if self.predict_distill is not None:
                        self._teacher_outputs = {
                            t: o.detach()
                            for t, o in self._last_outputs.items()}
                    log_vars.update(parts)
                log_vars[f'{name}.loss'] = parts['loss']
                if self.distill.loss_name in parts:
                    log_vars[f'{name}.{self.distill.loss_name}'] = \
                        parts[self.distill.loss_name]
                if self._teacher_outputs is not None and k > 0:
                    suffix = f'.{self.predict_distill.loss_name}'
                    log_vars[f'{name}{suffix}'] = sum(
                        v for key, v in parts.items() if key.endswith(suffix))
                total += parts['loss']
            optim_wrapper.step()
            optim_wrapper.zero_grad()
        finally:
            self._teacher = None
            self._teacher_outputs = None
            self._last_feats = None
            self._last_outputs = None
            self.set_subnet(saved['encoder'], saved['decoders'])
        log_vars['loss'] = total / len(subnets)
        return log_vars


# In mmengine's registry: the Runner looks wrappers up there.
@MODEL_WRAPPERS.register_module()
class SandwichDDP(MMDistributedDataParallel):
    """DDP wrapper of :class:`ControllableEncoderDecoder`: one training
    iteration runs its sandwich of sub-networks, gradients all-reduced
    once, on the last backward (``no_sync`` before)."""

    def train_step(self, data, optim_wrapper) -> Dict[str, torch.Tensor]:
        return self.module.sandwich_step(data, optim_wrapper, self)
