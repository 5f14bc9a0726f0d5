"""A shared encoder with one decoder per dense task, optionally adaptive."""
import contextlib
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

from ..backbones.swin_checkpoint import check_pretrained_backbone
from ..heads.multi_task_head import task_features
from ..policies.calibration import policy_budget
from ..utils.budget import check_budget
from ..utils.complexity import ComplexityCounter
from ..utils.freeze import freeze_parameters

# runtime()'s "leave as it is".
_UNCHANGED = object()
# How test_cfg.budget is turned into the policy's decisions.
BUDGET_MODES = ('target', 'cap', 'input')


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

    Call graph (adaptive backbone; a static one ignores the budget)::

        loss(): _training_budgets() -> extract_feat(inputs, budgets,
                all tasks) -> decode_head.loss() + budget_loss(
                backbone.last_stats, budgets)
        predict(): _decode() -> extract_feat(inputs, self.budget,
                   self.active_tasks) -> decode_head(feats, active tasks)
                   -> _set_complexity() (reads backbone.last_stats)
                   -> postprocess_result()

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
            ``requires_grad=False``, see ``freeze_parameters``).
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
        backbone = self._fill_policy_tasks(backbone, decode_head)
        backbone = self._fill_lora_tasks(backbone, decode_head)
        self.backbone = MODELS.build(backbone)
        if neck is not None:
            self.neck = MODELS.build(neck)
        self.decode_head = MODELS.build(decode_head)
        self.align_corners = self.decode_head.align_corners
        self.tasks = list(self.decode_head.tasks)
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(test_cfg or {})
        self.set_active_tasks(self.test_cfg.get('tasks'))
        self.set_budget(self.test_cfg.get('budget'))
        self.set_budget_mode(self.test_cfg.get('budget_mode', 'target'))
        if self.test_cfg.get('random_policy'):
            if not self.adaptive:
                raise ValueError('test_cfg.random_policy needs an adaptive '
                                 'backbone')
            self.backbone.set_random_policy(**self.test_cfg['random_policy'])
        self.task_losses = self.train_cfg.get('task_losses', True)
        self.train_budget = check_budget(
            self.train_cfg.get('budget', 1.0), 'train_cfg.budget')
        # Tasks trained (TaskAlternationHook: one at a time), None: all.
        self.train_tasks: Optional[List[str]] = None
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
        self.complexity = ComplexityCounter()
        self.frozen = []
        if self.train_cfg.get('frozen'):
            self.frozen = freeze_parameters(
                self, self.train_cfg['frozen'],
                self.train_cfg.get('trainable', ()))

    @staticmethod
    def _fill_policy_tasks(backbone: dict, decode_head: dict) -> dict:
        """A ``per_task`` policy without ``tasks`` gets the heads' tasks."""
        policy = backbone.get('policy') if isinstance(backbone, dict) \
            else None
        if policy and policy.get('task_mode') == 'per_task' and \
                not policy.get('tasks'):
            backbone = dict(backbone,
                            policy=dict(policy,
                                        tasks=list(decode_head['tasks'])))
        return backbone

    @staticmethod
    def _fill_lora_tasks(backbone: dict, decode_head: dict) -> dict:
        """MTLoRA's task-specific adapters: ``lora.tasks`` defaults to the
        heads' tasks, and each of them needs a decoder."""
        if not isinstance(backbone, dict) or \
                backbone.get('type') != 'MTLoRASwinTransformer':
            return backbone
        lora = dict(backbone.get('lora') or {})
        heads = list(decode_head['tasks'])
        if lora.get('tasks') is None:
            lora['tasks'] = heads
        else:
            for task in lora['tasks']:
                if task not in heads:
                    raise ValueError(
                        f'backbone.lora.tasks: task {task!r} has no decoder '
                        f'in decode_head.tasks {heads}')
        return dict(backbone, lora=lora)

    @property
    def task_streams(self) -> bool:
        """Whether the backbone returns features per task (MTLoRA)."""
        return bool(getattr(self.backbone, 'lora_tasks', None))

    @property
    def adaptive(self) -> bool:
        """Whether the backbone has a policy."""
        return getattr(self.backbone, 'policy', None) is not None

    def set_budget(self, budget: Optional[float]) -> None:
        """Set the inference budget: a number in (0, 1], or None to run
        every block."""
        budget = check_budget(budget)
        if budget is not None and not self.adaptive:
            raise ValueError(
                f'budget={budget} needs an adaptive backbone (e.g. '
                f'AdaptiveSwinTransformer with a policy); '
                f'{type(self.backbone).__name__} always runs every block')
        self.budget = budget

    def set_budget_mode(self, mode: str) -> None:
        """How the inference budget is met: ``'target'``, ``'cap'`` or
        ``'input'`` (see ``test_cfg``)."""
        if mode not in BUDGET_MODES:
            raise ValueError(f'budget_mode must be one of {BUDGET_MODES}, '
                             f'got {mode!r}')
        self.budget_mode = mode

    def budget_inputs(self) -> Tuple:
        """The policy's budget input and the cap an inference pass runs
        with at the current settings (``None, None`` runs every block):
        what ``predict`` hands the backbone (one number serves any
        batch), for tools that run the encoder alone."""
        if self.budget is None or not self.adaptive:
            return None, None
        # One budget for the batch, as numbers: the backbone makes the
        # per-image tensors on the device, and nothing is read back.
        requested = float(self.budget)
        if self.budget_mode == 'input':
            return requested, None
        # The curve's inversion, reused while the budget and the curve
        # (its version counter: calibration and loading bump it) stay.
        curve = self.backbone.policy.budget_curve
        key = (requested, curve._version, curve.data_ptr())
        cached = getattr(self, '_budget_input', None)
        if cached is None or cached[0] != key:
            inputs = policy_budget(self.backbone.policy,
                                   torch.tensor([requested]))
            cached = self._budget_input = (key, float(inputs[0]))
        return cached[1], (requested if self.budget_mode == 'cap' else None)

    def set_active_tasks(self, tasks: Optional[Sequence[str]]) -> None:
        """Restrict inference to ``tasks`` (None: every task); heads of the
        other tasks do not run."""
        self.active_tasks = self.tasks if tasks is None else check_tasks(
            tasks, self.tasks, where='active tasks')

    @contextlib.contextmanager
    def runtime(self, budget=_UNCHANGED, tasks=_UNCHANGED,
                budget_mode=_UNCHANGED) -> Iterator['MultiTaskEncoderDecoder']:
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
        """
        saved = self.budget, self.active_tasks, self.budget_mode
        try:
            if budget is not _UNCHANGED:
                self.set_budget(budget)
            if tasks is not _UNCHANGED:
                self.set_active_tasks(tasks)
            if budget_mode is not _UNCHANGED:
                self.set_budget_mode(budget_mode)
            yield self
        finally:
            self.budget, self.active_tasks, self.budget_mode = saved

    def set_train_budgets(self, budgets: Optional[torch.Tensor]) -> None:
        """Per-image budgets (B,) for the next training iterations; None
        falls back to ``train_cfg.budget``."""
        self._train_budgets = check_budget(budgets, 'training budgets')

    def set_train_tasks(self, tasks: Optional[Sequence[str]]) -> None:
        """Train only ``tasks`` (their decoders' losses and, with a
        ``per_task`` policy, their masks); None trains every task."""
        self.train_tasks = None if tasks is None else check_tasks(
            tasks, self.tasks, where='training tasks')

    def set_policy_temperature(self, tau: float) -> None:
        """The Gumbel-sigmoid temperature of the backbone's policy."""
        if not self.adaptive:
            raise ValueError('set_policy_temperature needs an adaptive '
                             'backbone (AdaptiveSwinTransformer with a '
                             'policy)')
        if not tau > 0:
            raise ValueError(f'policy temperature must be > 0, got {tau!r}')
        self.backbone.policy.tau = float(tau)

    def init_weights(self) -> None:
        check_pretrained_backbone(self.backbone)
        super().init_weights()

    def extract_feat(self, inputs: torch.Tensor, budget=None,
                     tasks: Optional[Sequence[str]] = None,
                     cap=None) -> List[torch.Tensor]:
        if self.adaptive:
            x = self.backbone(inputs, budget=budget, tasks=tasks, cap=cap)
        elif self.task_streams:
            x = self.backbone(inputs, tasks=tasks or self.tasks)
        else:
            x = self.backbone(inputs)
        if self.with_neck:
            if isinstance(x, dict):
                raise ValueError('a neck cannot take per-task features '
                                 '(MTLoRA task-specific adapters)')
            x = self.neck(x)
        return x

    def _decode(self, inputs: torch.Tensor
                ) -> Tuple[Dict[str, torch.Tensor], List[torch.Tensor]]:
        budget, cap = self.budget_inputs()
        feats = self.extract_feat(inputs, budget, self.active_tasks, cap)
        outs = self.decode_head(feats, self.active_tasks)
        outs = {
            task: resize(out, size=inputs.shape[2:], mode='bilinear',
                         align_corners=self.align_corners)
            for task, out in outs.items()
        }
        return outs, feats

    def encode_decode(self, inputs: torch.Tensor,
                      batch_img_metas: List[dict]) -> Dict[str, torch.Tensor]:
        """Raw outputs of the active tasks at the input's size."""
        return self._decode(inputs)[0]

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
            ``executed_fraction`` and ``budget_target``.
        """
        self.check_inputs(inputs, data_samples, 'loss',
                          self.train_cfg.get('check_finite', True))
        tasks = self.train_tasks or self.tasks
        if not self.adaptive:
            return self.decode_head.loss(
                self.extract_feat(inputs, tasks=tasks), data_samples, tasks)
        budgets = self._training_budgets(inputs.shape[0], inputs.device)
        feats = self.extract_feat(inputs, budgets, tasks)
        losses = {}
        if self.task_losses:
            losses.update(self.decode_head.loss(feats, data_samples, tasks))
        stats = self.backbone.last_stats
        losses['loss_budget'] = self.budget_loss(stats, budgets)
        # Logged, not summed (no "loss" in the key).
        losses['executed_fraction'] = stats.block_fraction.detach().mean()
        losses['budget_target'] = budgets.mean()
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
        outs, feats = self._decode(inputs)
        self._set_complexity(inputs, feats, data_samples)
        return self.postprocess_result(outs, data_samples)

    def decoder_key(self, task: str) -> str:
        """The complexity cache's key of ``task``'s decoder as it runs now
        (with its width, for a slimmable one)."""
        width = getattr(self.decode_head.decoders[task], 'width', None)
        return f'decoder.{task}' if width is None else \
            f'decoder.{task}@{width}'

    def _set_complexity(self, inputs: torch.Tensor,
                        feats: List[torch.Tensor],
                        data_samples: List[SegDataSample]) -> None:
        """Per-image GFLOPs of what this forward executed."""
        stats = getattr(self.backbone, 'last_stats', None)
        if hasattr(self.backbone, 'encoder_flops'):
            # Adapters and task streams: counted on the traced forward.
            encoder = [self.backbone.encoder_flops(
                inputs.shape[2:], self.active_tasks)] * len(data_samples)
        elif stats is None:
            encoder = [self.complexity.module_flops(
                self.backbone, inputs[:1], 'backbone')] * len(data_samples)
        else:
            encoder = stats.encoder_flops.tolist()
        heads = sum(
            self.complexity.module_flops(
                self.decode_head.decoders[task],
                [f[:1] for f in task_features(feats, task)],
                self.decoder_key(task)) for task in self.active_tasks)
        for i, sample in enumerate(data_samples):
            meta = dict(
                encoder_gflops=encoder[i] / 1e9,
                gflops=(encoder[i] + heads) / 1e9)
            if stats is not None:
                meta['policy'] = dict(
                    budget=self.budget,
                    budget_mode=self.budget_mode,
                    encoder_share=encoder[i] / stats.static_flops,
                    policy_gflops=float(stats.policy_flops[i]) / 1e9,
                    block_fraction=float(stats.block_fraction[i]),
                    block_keep=stats.block_keep[i].tolist(),
                    token_keep=stats.token_keep[i].tolist(),
                    blocks=stats.blocks[i].tolist(),
                    token_maps=[m[i].cpu().numpy()
                                for m in stats.token_maps])
            sample.set_metainfo(meta)

    def _forward(self,
                 inputs: torch.Tensor,
                 data_samples: OptSampleList = None
                 ) -> Dict[str, torch.Tensor]:
        budget, cap = self.budget_inputs()
        feats = self.extract_feat(inputs, budget, self.tasks, cap)
        return self.decode_head(feats, self.tasks)

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
