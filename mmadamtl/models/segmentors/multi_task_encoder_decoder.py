"""A shared encoder with one decoder per dense task, optionally adaptive."""
import contextlib
import copy
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import OptConfigType, OptMultiConfig, OptSampleList

from mmadamtl.utils import TASKS, check_tasks

from ..backbones.encoder import (BUDGET_MODES, Control, EncoderStats,
                                 MultiTaskEncoder, as_encoder,
                                 complete_encoder_config)
from ..backbones.swin_checkpoint import (check_checkpoint_matches,
                                         check_pretrained_backbone,
                                         load_state_dict_file)
from ..heads.multi_task_head import AtWidth, task_features
from ..utils.budget import check_budget
from ..utils.compile import compiled_copy, strict_recompiles
from ..utils.complexity import ComplexityCounter
from ..utils.freeze import freeze_parameters

# runtime()'s "leave as it is".
_UNCHANGED = object()


def _heads(decode_head, feats, tasks, decoders, size, align_corners
           ) -> Dict[str, torch.Tensor]:
    """Raw outputs of ``tasks``' decoders, resized to ``size``."""
    outs = decode_head(feats, tasks, decoders)
    return {task: resize(out, size=size, mode='bilinear',
                         align_corners=align_corners)
            for task, out in outs.items()}


def _check_flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f'{name} must be True or False, got {value!r}')
    return value


def training_complexity(stats) -> Dict[str, torch.Tensor]:
    """What a training batch executed, as logged values (no ``loss`` in
    the keys): the mean ``encoder_gflops`` and per stage the mean share
    of blocks (``block_keep_s<i>``) and of MLP tokens
    (``token_keep_s<i>``) run. ``ComplexityLoggerHook`` averages them
    over the ranks."""
    out = {'encoder_gflops': stats.encoder_flops.detach().mean() / 1e9}
    for i, v in enumerate(stats.block_keep.mean(0)):
        out[f'block_keep_s{i}'] = v
    for i, v in enumerate(stats.token_keep.mean(0)):
        out[f'token_keep_s{i}'] = v
    return out


@MODELS.register_module()
class MultiTaskEncoderDecoder(BaseSegmentor):
    """Multi-task encoder-decoder segmentor.

    ``loss`` returns every task's loss keyed ``<task>.<loss name>``;
    ``predict`` fills one ``pred_<task>`` field per active task, resized to
    the original image and un-flipped (normals' x flips sign);
    ``_forward`` runs every head so FLOPs counters see the whole model.

    With an adaptive backbone (``AdaptiveSwinTransformer`` with a policy)
    the compute budget and the tasks being run steer its policy; ``loss``
    adds ``loss_budget`` (``BudgetLoss``) and logs the executed fraction.
    Every predicted sample carries ``metainfo['gflops']`` (encoder and the
    heads that ran), ``metainfo['encoder_gflops']`` and
    ``metainfo['policy']`` (its decisions), from the decisions executed
    for that image in that forward pass (multiply-adds, the convention
    of mmengine's counter).

    The backbone is seen through the encoder contract
    (:class:`~mmadamtl.models.backbones.MultiTaskEncoder`, ``encoder``):
    every forward builds one :class:`~mmadamtl.models.backbones.Control`
    and passes it down; what the encoder executed comes back with the
    features. Call graph::

        loss(): Control(budget=training budgets, 'input', tasks)
                -> encode() -> encoder.encode(x, control) -> feats, stats
                -> decode_head.loss(feats) + budget_loss(stats, budgets)
        predict(): control() (the settings: budget, mode, tasks)
                   -> _decode(inputs, control) -> encode() ->
                   decode_head(feats, control.tasks, control.decoders)
                   -> _set_complexity(stats, ...) -> postprocess_result()

    The run-time state is set through methods, never by writing
    attributes: ``set_budget``, ``set_active_tasks`` and the context
    manager ``runtime(budget=..., tasks=...)`` for inference;
    ``set_train_budgets`` and ``set_policy_temperature`` for training
    (``BudgetScheduleHook`` calls them every iteration).

    Args:
        backbone: Encoder config (e.g. mmseg's ``SwinTransformer`` or
            ``AdaptiveSwinTransformer``).
        decode_head: A ``MultiTaskHead`` config.
        neck: Optional neck.
        train_cfg: ``budget`` (target when no ``BudgetScheduleHook`` sets
            the budgets, default 1.0), ``budget_loss`` (default
            ``dict(type='BudgetLoss')``), ``task_losses`` (False for
            AdaMTL's policy pre-training: only the budget loss),
            ``check_finite`` (default True: ``loss`` refuses a batch with
            NaN or infinite values, naming its images),
            ``frozen``/``trainable`` (module paths: the parameters under
            ``frozen`` but not under a longer ``trainable`` path get
            ``requires_grad=False``, see ``freeze_parameters``),
            ``distill`` (knowledge distillation from a static teacher:
            ``dict(teacher_checkpoint=PATH, temperature=1.0,
            loss_weight=1.0, task_weights=None)``; the teacher is this
            architecture with the checkpoint's weights, run with every
            block, in eval mode and without gradients, and each trained
            task adds ``<task>.loss_pkd``, ``PredictionDistillLoss``).
        test_cfg: ``tasks=[...]`` restricts the tasks predicted;
            ``budget`` (in (0, 1], None runs every block) for an adaptive
            backbone, and ``budget_mode``, how the budget is met:

            - ``'target'`` (the default): the mean executed share of block
              compute over a data set is the budget (each image free to
              vary with its content): the budget goes through the
              policy's measured budget curve (``calibrate_budget``) to
              its input (a policy without a measured curve gets the raw
              budget, with a warning);
            - ``'cap'``: as ``'target'``, and no image's executed encoder
              multiply-adds exceed ``budget`` x the static encoder's
              (guaranteed by construction, see ``SkipRunner``);
            - ``'input'``: the budget is the policy's raw input, what it
              was conditioned on in training.

            ``check_finite`` (default True): ``predict`` refuses a batch
            with NaN or infinite values, naming its images (a NaN image
            gives NaN maps, labels that mean nothing and, with a policy,
            every block skipped: savings that never happened); False
            passes such a batch through.

            ``captured`` (default False): an adaptive backbone runs
            inference in shapes from a fixed set, its blocks and stages
            compiled once per shape (``Control.captured``,
            ``CapturedRunner``), and the heads run compiled
            (``compile_static``, once per input shape and dtype, task
            set, widths and autocast state).

            ``random_policy=dict(share=..., seed=0)`` replaces the policy's
            inference decisions by uniform random ones executing ``share``
            of the block compute on average (the control of
            ``RandomDecisions``; use ``budget_mode='input'``).
        data_preprocessor: Usually ``MultiTaskDataPreProcessor``.
    """

    def __init__(self,
                 backbone: dict,
                 decode_head: dict,
                 neck: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        backbone = complete_encoder_config(backbone,
                                           list(decode_head['tasks']))
        self.backbone = MODELS.build(backbone)
        if neck is not None:
            self.neck = MODELS.build(neck)
        self.decode_head = MODELS.build(decode_head)
        self.align_corners = self.decode_head.align_corners
        self.tasks = list(self.decode_head.tasks)
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(test_cfg or {})
        self.complexity = ComplexityCounter()
        self.set_active_tasks(self.test_cfg.get('tasks'))
        self.set_budget(self.test_cfg.get('budget'))
        self.set_budget_mode(self.test_cfg.get('budget_mode', 'target'))
        self.captured = _check_flag(self.test_cfg.get('captured', False),
                                    'test_cfg.captured')
        self._compiled_heads = None
        if self.test_cfg.get('random_policy'):
            if not self.adaptive:
                raise ValueError('test_cfg.random_policy needs an adaptive '
                                 'backbone')
            self.backbone.set_random_policy(**self.test_cfg['random_policy'])
        self.task_losses = self.train_cfg.get('task_losses', True)
        self.train_budget = check_budget(
            self.train_cfg.get('budget', 1.0), 'train_cfg.budget')
        # Tasks trained (TaskAlternationHook: one at a time), None: all;
        # with all losses, every task's loss while only the trained
        # tasks' decoders learn (the others' parameters frozen here).
        self.train_tasks: Optional[List[str]] = None
        self._all_losses = False
        self._turn_frozen: List[torch.nn.Parameter] = []
        # Per-image training budgets, set each iteration by
        # BudgetScheduleHook through set_train_budgets.
        self._train_budgets: Optional[torch.Tensor] = None
        self.budget_loss = None
        if self.adaptive:
            self.budget_loss = MODELS.build(
                self.train_cfg.get('budget_loss', dict(type='BudgetLoss')))
        elif not self.task_losses:
            raise ValueError('train_cfg.task_losses=False leaves nothing to '
                             'train without an adaptive backbone')
        self.kd_loss, self.kd_checkpoint = self._build_distill(
            self.train_cfg.get('distill'))
        # The teacher, built at the first training batch; in a tuple, out
        # of the module tree: not trained, not saved, not switched to
        # train mode with the student.
        self._kd_teacher: Optional[tuple] = None
        self.frozen = []
        if self.train_cfg.get('frozen'):
            self.frozen = freeze_parameters(
                self, self.train_cfg['frozen'],
                self.train_cfg.get('trainable', ()))

    @property
    def encoder(self) -> MultiTaskEncoder:
        """The backbone through the encoder contract (an mmseg backbone of
        another kind is run in full, see ``ForeignEncoder``)."""
        return as_encoder(self.backbone, self.complexity)

    @property
    def adaptive(self) -> bool:
        """Whether the encoder honours a budget (a policy)."""
        return 'budget' in self.encoder.controls

    def set_budget(self, budget: Optional[float]) -> None:
        """Set the inference budget: a number in (0, 1], or None to run
        every block."""
        budget = check_budget(budget)
        self.encoder.check_control(Control(budget=budget))
        self.budget = budget

    def set_budget_mode(self, mode: str) -> None:
        """How the inference budget is met: ``'target'``, ``'cap'`` or
        ``'input'`` (see ``test_cfg``)."""
        if mode not in BUDGET_MODES:
            raise ValueError(f'budget_mode must be one of {BUDGET_MODES}, '
                             f'got {mode!r}')
        self.budget_mode = mode

    def control(self, img_hw: Optional[Sequence[int]] = None) -> Control:
        """The :class:`Control` inference runs with at the current
        settings (budget, budget mode, active tasks) for inputs of size
        ``img_hw``: what ``predict`` hands the encoder, for tools that run
        it alone (``encoder.encode(x, model.control())``)."""
        return Control(budget=self.budget, budget_mode=self.budget_mode,
                       tasks=tuple(self.active_tasks),
                       captured=self.captured)

    def set_active_tasks(self, tasks: Optional[Sequence[str]]) -> None:
        """Restrict inference to ``tasks`` (None: every task); heads of the
        other tasks do not run."""
        self.active_tasks = self.tasks if tasks is None else check_tasks(
            tasks, self.tasks, where='active tasks')

    @contextlib.contextmanager
    def runtime(self, budget=_UNCHANGED, tasks=_UNCHANGED,
                budget_mode=_UNCHANGED, captured=_UNCHANGED
                ) -> Iterator['MultiTaskEncoderDecoder']:
        """Run inference at ``budget`` and/or on ``tasks`` inside the
        ``with`` block, and restore the previous settings after it::

            with model.runtime(budget=0.5, tasks=['semseg']):
                model.predict(inputs)

        Args:
            budget: As :meth:`set_budget` (None runs every block); left as
                it is when not given.
            tasks: As :meth:`set_active_tasks`; left as it is when not
                given.
            budget_mode: As :meth:`set_budget_mode`; left as it is when
                not given.
            captured: As ``test_cfg.captured``; left as it is when not
                given.
        """
        saved = (self.budget, self.active_tasks, self.budget_mode,
                 self.captured)
        try:
            if budget is not _UNCHANGED:
                self.set_budget(budget)
            if tasks is not _UNCHANGED:
                self.set_active_tasks(tasks)
            if budget_mode is not _UNCHANGED:
                self.set_budget_mode(budget_mode)
            if captured is not _UNCHANGED:
                self.captured = _check_flag(captured, 'captured')
            yield self
        finally:
            (self.budget, self.active_tasks, self.budget_mode,
             self.captured) = saved

    def set_train_budgets(self, budgets: Optional[torch.Tensor]) -> None:
        """Per-image budgets (B,) for the next training iterations; None
        falls back to ``train_cfg.budget``."""
        self._train_budgets = check_budget(budgets, 'training budgets')

    def set_train_tasks(self, tasks: Optional[Sequence[str]],
                        all_losses: bool = False) -> None:
        """Train only ``tasks`` (their decoders' losses and, with a
        ``per_task`` policy, their masks); None trains every task.

        With ``all_losses`` (AdaMTL's own alternation) every task's loss
        is trained (through the encoder and ``tasks``' masks) but only
        ``tasks``' decoders learn: the other decoders' parameters are
        frozen (``requires_grad=False``) until the next call, which
        unfreezes what this one froze."""
        self.train_tasks = None if tasks is None else check_tasks(
            tasks, self.tasks, where='training tasks')
        for p in self._turn_frozen:
            p.requires_grad_(True)
        self._turn_frozen = []
        self._all_losses = bool(all_losses) and tasks is not None
        if not self._all_losses:
            return
        for task in self.tasks:
            if task in self.train_tasks:
                continue
            for p in self.decode_head.decoders[task].parameters():
                if p.requires_grad:
                    p.requires_grad_(False)
                    self._turn_frozen.append(p)

    def _loss_tasks(self, control: Control, feats) -> Tuple[str, ...]:
        """The tasks whose losses a training batch sums."""
        if not self._all_losses:
            return control.tasks
        if isinstance(feats, dict):
            raise ValueError(
                'TaskAlternationHook(all_task_losses=True) needs features '
                'shared by the tasks; this backbone gives each task its own '
                '(MTLoRA): use all_task_losses=False')
        return tuple(self.tasks)

    def set_policy_temperature(self, tau: float) -> None:
        """The Gumbel-sigmoid temperature of the backbone's policy."""
        self.encoder.set_policy_temperature(tau)

    def init_weights(self) -> None:
        check_pretrained_backbone(self.backbone)
        super().init_weights()

    def encode(self, inputs: torch.Tensor,
               control: Optional[Control] = None
               ) -> Tuple[List[torch.Tensor], EncoderStats]:
        """The (neck's) features of ``inputs`` under ``control`` (default:
        :meth:`control`) and what the encoder executed per image."""
        control = self.control(inputs.shape[2:]) if control is None \
            else control
        x, stats = self.encoder.encode(inputs, control)
        if self.with_neck:
            if isinstance(x, dict):
                raise ValueError('a neck cannot take per-task features '
                                 '(MTLoRA task-specific adapters)')
            x = self.neck(x)
        return x, stats

    def extract_feat(self, inputs: torch.Tensor,
                     control: Optional[Control] = None) -> List[torch.Tensor]:
        """The features alone (see :meth:`encode`)."""
        return self.encode(inputs, control)[0]

    def _decode(self, inputs: torch.Tensor, control: Optional[Control] = None
                ) -> Tuple[Dict[str, torch.Tensor], List[torch.Tensor],
                           EncoderStats]:
        """Raw outputs of ``control.tasks`` at the input's size, the
        features and the encoder's stats."""
        control = self.control(inputs.shape[2:]) if control is None \
            else control
        feats, stats = self.encode(inputs, control)
        args = (self.decode_head, feats, control.tasks, control.decoders,
                tuple(inputs.shape[2:]), self.align_corners)
        if not control.captured or self.training:
            return _heads(*args), feats, stats
        if self._compiled_heads is None:
            # Compiled at the first captured forward, once per input
            # shape, dtype and device, task set and widths, and autocast
            # state (the guards it keeps: not the modules', whose
            # training flag is False here); past dynamo's limit it
            # raises.
            self._compiled_heads = compiled_copy(_heads)
        with strict_recompiles(what='more head graphs (input shapes, '
                               'task sets, widths)'):
            return self._compiled_heads(*args), feats, stats

    def _apply(self, fn, *args, **kwargs):
        # Moved or cast: the compiled heads (no guards on the modules)
        # are rebuilt at the next captured forward, the distillation
        # teacher (outside the module tree) at the next training batch.
        self._compiled_heads = None
        self._kd_teacher = None
        return super()._apply(fn, *args, **kwargs)

    @staticmethod
    def _build_distill(cfg) -> Tuple[Optional[torch.nn.Module],
                                     Optional[str]]:
        """``(PredictionDistillLoss, teacher checkpoint)`` of
        ``train_cfg.distill``, ``(None, None)`` without it."""
        if cfg is None:
            return None, None
        cfg = dict(cfg)
        unknown = set(cfg) - {'teacher_checkpoint', 'temperature',
                              'loss_weight', 'task_weights'}
        if unknown:
            raise ValueError(
                f'train_cfg.distill: unknown key(s) {sorted(unknown)} '
                f'(known: teacher_checkpoint, temperature, loss_weight, '
                f'task_weights)')
        path = cfg.pop('teacher_checkpoint', None)
        if not path:
            raise ValueError(
                'train_cfg.distill needs teacher_checkpoint=<the static '
                'model\'s checkpoint> (e.g. the stage-1 checkpoint)')
        return MODELS.build(dict(type='PredictionDistillLoss', **cfg)), path

    def kd_teacher(self) -> 'MultiTaskEncoderDecoder':
        """The teacher of ``train_cfg.distill``: this model's
        architecture with the teacher checkpoint's weights (read with the
        weights-only reader; an adaptive model's policy may be missing
        from them, it is not used: the teacher runs every block), in eval
        mode, without gradients. Built once, rebuilt after a move or cast.

        Raises:
            ValueError: Without ``train_cfg.distill``, or a checkpoint of
                another architecture (naming its keys).
        """
        if self.kd_loss is None:
            raise ValueError('kd_teacher: no train_cfg.distill')
        if self._kd_teacher is None:
            path = self.kd_checkpoint
            state = load_state_dict_file(path)
            check_checkpoint_matches(self, path, optional=[r'(^|\.)policy\.'],
                                     state=state)
            teacher = copy.deepcopy(self)
            # A teacher of its own, without the student's caches.
            teacher._kd_teacher = teacher._compiled_heads = None
            teacher.load_state_dict(state, strict=False)
            self._kd_teacher = (teacher.eval().requires_grad_(False), )
        return self._kd_teacher[0]

    def _task_losses(self, inputs: torch.Tensor, feats,
                     data_samples: List[SegDataSample],
                     control: Control) -> dict:
        """The decoders' losses of a training batch and, with
        ``train_cfg.distill``, the distillation of the teacher's outputs
        (of the same tasks, on the same inputs) into theirs."""
        tasks = self._loss_tasks(control, feats)
        if self.kd_loss is None:
            return self.decode_head.loss(feats, data_samples, tasks)
        outs = self.decode_head(feats, tasks)
        losses = self.decode_head.loss_by_outputs(outs, data_samples, feats)
        teacher = self.kd_teacher()
        with torch.no_grad():
            t_feats, _ = teacher.encode(inputs, Control(tasks=tuple(outs)))
            t_outs = teacher.decode_head(t_feats, tuple(outs))
        losses.update(self.kd_loss(outs, t_outs))
        return losses

    def encode_decode(self, inputs: torch.Tensor,
                      batch_img_metas: List[dict]) -> Dict[str, torch.Tensor]:
        """Raw outputs of the active tasks at the input's size."""
        return self._decode(inputs)[0]

    def training_control(self, batch: int, device) -> Control:
        """The :class:`Control` a training batch of ``batch`` images runs
        with: the tasks trained and, with a policy, the per-image budgets
        (``set_train_budgets``, else ``train_cfg.budget``) as the policy's
        inputs."""
        tasks = tuple(self.train_tasks or self.tasks)
        if not self.adaptive:
            return Control(tasks=tasks)
        return Control(budget=self._training_budgets(batch, device),
                       budget_mode='input', tasks=tasks)

    def _training_budgets(self, batch: int, device) -> torch.Tensor:
        budgets = self._train_budgets
        if budgets is None:
            return torch.full((batch, ), self.train_budget, device=device)
        if budgets.numel() != batch:
            raise ValueError(
                f'set_train_budgets gave {budgets.numel()} budgets for a '
                f'batch of {batch} images (BudgetScheduleHook draws one per '
                f'image of the batch it sees)')
        return budgets.to(device)

    @staticmethod
    def check_inputs(inputs: torch.Tensor, data_samples, where: str,
                     check_finite: bool = True) -> None:
        """Refuse an empty batch and, with ``check_finite``, one holding NaN
        or infinite values (one host read), naming its images.

        Raises:
            ValueError: Naming ``where`` and the images.
        """
        if inputs.dim() != 4 or inputs.shape[0] == 0:
            raise ValueError(f'{where}: expected a batch of images (B, C, H, '
                             f'W) with B >= 1, got shape '
                             f'{tuple(inputs.shape)}')
        if not check_finite or bool(torch.isfinite(inputs).all()):
            return
        bad = (~torch.isfinite(inputs)).flatten(1).any(1).nonzero()
        names = []
        for i in bad.flatten().tolist():
            meta = data_samples[i].metainfo if data_samples else {}
            names.append(str(meta.get('img_path', f'image {i}')))
        raise ValueError(
            f'{where}: {len(names)} input image(s) hold NaN or infinite '
            f'values: {", ".join(names[:5])}; outputs and executed '
            f'compute would be meaningless (set check_finite=False in '
            f'the {"test_cfg" if "predict" in where else "train_cfg"} '
            f'to pass them through)')

    def loss(self, inputs: torch.Tensor,
             data_samples: List[SegDataSample]) -> dict:
        """Losses of a training batch.

        Args:
            inputs: Preprocessed images (B, 3, H, W).
            data_samples: With every task's ground truth.

        Returns:
            dict: ``<task>.<loss name>`` per task; with an adaptive
            backbone also ``loss_budget`` and, logged only,
            ``executed_fraction``, ``budget_target`` and what the batch
            executed (``training_complexity``: ``encoder_gflops``,
            ``block_keep_s<i>``, ``token_keep_s<i>``).
        """
        self.check_inputs(inputs, data_samples, 'loss',
                          self.train_cfg.get('check_finite', True))
        control = self.training_control(inputs.shape[0], inputs.device)
        if not self.adaptive:
            feats = self.extract_feat(inputs, control)
            return self._task_losses(inputs, feats, data_samples, control)
        budgets = control.budget
        feats, stats = self.encode(inputs, control)
        losses = {}
        if self.task_losses:
            losses.update(
                self._task_losses(inputs, feats, data_samples, control))
        losses['loss_budget'] = self.budget_loss(stats, budgets)
        # Logged, not summed (no "loss" in the key).
        losses['executed_fraction'] = stats.block_fraction.detach().mean()
        losses['budget_target'] = budgets.mean()
        losses.update(training_complexity(stats))
        return losses

    def predict(self,
                inputs: torch.Tensor,
                data_samples: OptSampleList = None) -> List[SegDataSample]:
        """Predict the active tasks at the current budget.

        Args:
            inputs: Preprocessed images (B, 3, H, W).
            data_samples: Their samples (meta information); made up from
                the input size when None.

        Returns:
            list[SegDataSample]: ``pred_<task>`` per active task at the
            original image size, and in ``metainfo`` what the image
            executed: ``gflops``, ``encoder_gflops`` and, with a policy,
            ``policy`` (see ``mmadamtl.evaluation.image_complexity``).
        """
        self.check_inputs(inputs, data_samples, 'predict',
                          self.test_cfg.get('check_finite', True))
        if data_samples is None:
            data_samples = [
                SegDataSample(metainfo=dict(
                    ori_shape=inputs.shape[2:], img_shape=inputs.shape[2:]))
                for _ in range(inputs.shape[0])
            ]
        control = self.control(inputs.shape[2:])
        outs, feats, stats = self._decode(inputs, control)
        self._set_complexity(inputs, feats, stats, control, data_samples)
        return self.postprocess_result(outs, data_samples)

    def decoder_flops(self, task: str, feats: List[torch.Tensor],
                      width: Optional[float] = None) -> float:
        """Multiply-adds of ``task``'s decoder on the features ``feats``
        (of one image), at ``width`` (a slimmable decoder's multiplier;
        None: its only one): mmengine's counter, once per shape and
        width."""
        decoder = self.decode_head.decoders[task]
        if width is None:
            return self.complexity.module_flops(decoder, feats,
                                                f'decoder.{task}')
        return self.complexity.module_flops(
            AtWidth(decoder, width), feats, f'decoder.{task}@{width}')

    def _set_complexity(self, inputs: torch.Tensor,
                        feats: List[torch.Tensor], stats: EncoderStats,
                        control: Control,
                        data_samples: List[SegDataSample]) -> None:
        """Per-image GFLOPs of what this forward executed: the encoder's
        from its stats (with what else it reports, e.g. AdaMTL's
        ``policy``), each decoder that ran counted at its width."""
        encoder = stats.encoder_flops.tolist()
        widths = control.decoders or {}
        heads = sum(
            self.decoder_flops(task,
                               [f[:1] for f in task_features(feats, task)],
                               widths.get(task)) for task in control.tasks)
        for i, sample in enumerate(data_samples):
            meta = dict(
                encoder_gflops=encoder[i] / 1e9,
                gflops=(encoder[i] + heads) / 1e9)
            meta.update(stats.image_meta(i))
            sample.set_metainfo(meta)

    def _forward(self,
                 inputs: torch.Tensor,
                 data_samples: OptSampleList = None
                 ) -> Dict[str, torch.Tensor]:
        """Every head on the features (what FLOPs counters trace)."""
        control = self.control(inputs.shape[2:])
        tasks = tuple(self.tasks)
        widths = None if control.decoders is None else {
            t: control.decoders.get(t) or None for t in tasks}
        feats = self.extract_feat(inputs, control.replace(tasks=tasks))
        return self.decode_head(feats, tasks, widths)

    def postprocess_result(self, outs: Dict[str, torch.Tensor],
                           data_samples: List[SegDataSample]
                           ) -> List[SegDataSample]:
        """Crop the padding, undo a flip, resize to the original image and
        turn each task's raw output into its prediction."""
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            h, w = meta.get('img_shape', meta['ori_shape'])[:2]
            flip = meta.get('flip', False)
            direction = meta.get('flip_direction')
            for task, out in outs.items():
                spec = TASKS[task]
                x = out[i:i + 1, :, :h, :w]
                if flip:
                    if direction != 'horizontal':
                        raise ValueError(
                            f'only horizontal flips can be undone, got '
                            f'{direction!r}')
                    x = x.flip(-1)
                    if spec.kind == 'normals':
                        x = x * x.new_tensor([-1., 1., 1.]).view(1, 3, 1, 1)
                x = resize(x, size=meta['ori_shape'][:2], mode='bilinear',
                           align_corners=self.align_corners)[0]
                sample.set_field(PixelData(data=self._activate(spec, x)),
                                 spec.pred_field)
        return data_samples

    @staticmethod
    def _activate(spec, x: torch.Tensor) -> torch.Tensor:
        if spec.kind == 'seg':
            return x.argmax(dim=0, keepdim=True)
        if spec.kind == 'binary':
            return x.sigmoid()
        if spec.kind == 'normals':
            return F.normalize(x, p=2, dim=0)
        return x
