"""One decoder and one loss per task, built from a single config."""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmadamtl.utils import TASKS, check_tasks

from ..losses.loss_weighting import build_loss_weighting

# The encoder's output: shared stage maps, or per task its own.
Features = Union[List[torch.Tensor], Dict[str, List[torch.Tensor]]]


def task_features(inputs: Features, task: str) -> List[torch.Tensor]:
    """The stage maps task ``task`` decodes."""
    if isinstance(inputs, dict):
        if task not in inputs:
            raise KeyError(f'task {task!r}: the backbone returned features '
                           f'for {sorted(inputs)} only')
        return inputs[task]
    return inputs


class AtWidth(nn.Module):
    """A decoder at one width (a slimmable one's multiplier), called with
    the features alone (what mmengine's FLOPs counter traces). It holds no
    parameters of its own."""

    def __init__(self, decoder: nn.Module, width: float) -> None:
        super().__init__()
        self.decoder = decoder
        self.width = float(width)

    def forward(self, feats: List[torch.Tensor]) -> torch.Tensor:
        return self.decoder(feats, self.width)


@MODELS.register_module()
class MultiTaskHead(BaseModule):
    """Dense multi-task head: a decoder per task on the shared features.

    Example::

        decode_head=dict(
            type='MultiTaskHead',
            in_channels=[96, 192, 384, 768],
            decoder=dict(type='AdaMTLDecoder', channels=64),
            tasks=dict(
                semseg=dict(out_channels=21),  # AdaMTL's loss and weight
                normals=dict(out_channels=3,
                             loss=dict(type='NormalsL1Loss',
                                       loss_weight=5.0))))

    Args:
        in_channels: Channels of the backbone outputs.
        tasks: Per task ``out_channels`` and optionally ``loss`` (without
            it the task gets AdaMTL's loss and weight, its ``TaskSpec``'s
            ``loss`` in :data:`mmadamtl.utils.TASKS`) and ``decoder``
            (settings of its decoder that differ from ``decoder``'s, e.g.
            a narrow model's ``channels``).
        decoder: Decoder config shared by all tasks (``in_channels`` and
            ``out_channels`` are filled in per task).
        align_corners: ``align_corners`` of the upsampling to label size.
        loss_weighting: How the task losses are weighted in training beyond
            their fixed ``loss_weight``: None (fixed weights only),
            ``dict(type='UncertaintyWeighting')``, ``'DWAWeighting'`` or
            ``'GradNormWeighting'`` (see
            :mod:`mmadamtl.models.losses.loss_weighting`); each task's
            weight is logged as ``<task>.weight``.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 tasks: Dict[str, dict],
                 decoder: dict = dict(type='AdaMTLDecoder'),
                 align_corners: bool = False,
                 loss_weighting: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.tasks = check_tasks(tasks, where='MultiTaskHead.tasks')
        self.align_corners = align_corners
        self.out_channels = {}
        self.decoders = nn.ModuleDict()
        self.losses = nn.ModuleDict()
        for task, cfg in tasks.items():
            spec = TASKS[task]
            if 'out_channels' not in cfg:
                raise KeyError(f'MultiTaskHead.tasks.{task}: out_channels '
                               f'is required')
            out = int(cfg['out_channels'])
            if spec.kind != 'seg' and out != spec.channels:
                raise ValueError(
                    f'MultiTaskHead.tasks.{task}: out_channels must be '
                    f'{spec.channels} for a {spec.kind} task, got {out}')
            if spec.kind == 'seg' and out < 2:
                raise ValueError(f'MultiTaskHead.tasks.{task}: out_channels '
                                 f'(number of classes) must be >= 2')
            self.out_channels[task] = out
            self.decoders[task] = MODELS.build(
                dict(decoder, **cfg.get('decoder', {}),
                     in_channels=list(in_channels),
                     out_channels=out, align_corners=align_corners))
            self.losses[task] = MODELS.build(
                cfg.get('loss', dict(spec.loss)))
        self.loss_weighting = build_loss_weighting(loss_weighting,
                                                   self.tasks)

    def forward(self,
                inputs: Features,
                tasks: Optional[Sequence[str]] = None,
                widths: Optional[Dict[str, float]] = None
                ) -> Dict[str, torch.Tensor]:
        """Raw outputs of ``tasks`` (all by default) at feature resolution.

        ``inputs``: the shared stage features (a list), or per task its
        own (``{task: list}``, MTLoRA's task-specific streams);
        ``widths``: slimmable decoders' width per task (None: decoders
        called without one)."""
        tasks = self.tasks if tasks is None else tasks
        return {
            task: self.run_decoder(task, task_features(inputs, task),
                                   None if widths is None else widths[task])
            for task in tasks
        }

    def run_decoder(self, task: str, feats: List[torch.Tensor],
                    width: Optional[float] = None) -> torch.Tensor:
        """``task``'s decoder on its features, at ``width`` (a slimmable
        decoder's multiplier; None: its only or widest width)."""
        decoder = self.decoders[task]
        return decoder(feats) if width is None else decoder(feats, width)

    def _target(self, task: str,
                data_samples: List[SegDataSample]) -> torch.Tensor:
        field = TASKS[task].gt_field
        maps = []
        for sample in data_samples:
            if field not in sample:
                raise KeyError(
                    f'task {task!r}: data sample {sample.get("img_path")} '
                    f'has no {field}; load it with LoadMultiTaskAnnotations')
            maps.append(sample.get(field).data)
        return torch.stack(maps)

    def _check_labels(self, task: str, target: torch.Tensor) -> None:
        labels = target[target != TASKS[task].ignore_value]
        if labels.numel() and (labels.min() < 0
                               or labels.max() >= self.out_channels[task]):
            raise ValueError(
                f'task {task!r}: ground truth holds label '
                f'{int(labels.max())} (min {int(labels.min())}) but the head '
                f'predicts {self.out_channels[task]} classes; check '
                f'out_channels against the dataset\'s classes')

    def loss(self,
             inputs: Features,
             data_samples: List[SegDataSample],
             tasks: Optional[Sequence[str]] = None,
             widths: Optional[Dict[str, float]] = None
             ) -> Dict[str, torch.Tensor]:
        """Per-task losses, keyed ``<task>.<loss name>``; in training with
        a ``loss_weighting`` weighted by it, plus its ``loss_weighting``
        term and each task's ``<task>.weight`` (logged)."""
        return self.loss_by_outputs(self.forward(inputs, tasks, widths),
                                    data_samples, inputs)

    def loss_by_outputs(self, outputs: Dict[str, torch.Tensor],
                        data_samples: List[SegDataSample],
                        inputs: Features) -> Dict[str, torch.Tensor]:
        """:meth:`loss` of raw outputs already computed (``forward``'s), for
        a caller that also uses them (e.g. to distil them); ``inputs``
        are the features they were decoded from (for the
        ``loss_weighting``)."""
        losses, keys = {}, {}
        for task, logits in outputs.items():
            spec = TASKS[task]
            target = self._target(task, data_samples)
            logits = resize(logits, size=target.shape[2:], mode='bilinear',
                            align_corners=self.align_corners)
            loss_fn = self.losses[task]
            if spec.kind == 'seg':
                target = target.squeeze(1)
                self._check_labels(task, target)
                value = loss_fn(logits, target,
                                ignore_index=int(spec.ignore_value))
            else:
                value = loss_fn(logits, target)
            keys[task] = f'{task}.{loss_fn.loss_name}'
            losses[task] = value
        extra = {}
        if self.loss_weighting is not None and self.training and losses:
            losses, extra = self.loss_weighting(losses, inputs)
        out = {keys[task]: value for task, value in losses.items()}
        out.update(extra)
        return out
