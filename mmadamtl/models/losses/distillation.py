"""Prediction distillation: a student's dense task outputs pulled towards
a teacher's, per task, in the form that suits the task's kind.

Used by the controllable model's sandwich step (the widest sub-network
teaches the others) and meant for any teacher/student pair of the
package's multi-task models: both give raw outputs per task, as the heads
produce them (``{task: (B, C, H, W)}`` logits or maps).
"""
from typing import Dict, Mapping, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS

from mmadamtl.utils import TASKS, check_tasks

from ..utils.precision import as_float32, full_precision


def _masked_mean(values: torch.Tensor,
                 valid: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean of ``values`` (B, C, H, W) over every element, or over the
    pixels where ``valid`` (B, 1, H, W) is true (each counted C times)."""
    if valid is None:
        return values.mean()
    valid = valid.to(values.dtype).expand_as(values)
    return (values * valid).sum() / valid.sum().clamp(min=1)


def distill_task(kind: str, student: torch.Tensor, teacher: torch.Tensor,
                 temperature: float = 1.0,
                 valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The distillation loss of one task's output, by its ``kind`` (a
    ``TaskSpec.kind`` of :data:`mmadamtl.utils.TASKS`), unweighted:

    - ``'seg'`` (class logits): ``T^2 x KL(softmax(t / T) || softmax(s /
      T))``, summed over classes, averaged over pixels (Hinton et al.'s
      scaling keeps the gradient's size when ``T`` changes);
    - ``'binary'`` (one logit): binary cross-entropy of the student's
      logit against the teacher's probability ``sigmoid(t)`` as a soft
      target, averaged over pixels (no temperature, no class balancing);
    - ``'normals'``: L1 between the L2-normalised maps, as
      ``NormalsL1Loss`` compares a prediction with its ground truth,
      averaged over elements;
    - ``'depth'``: L1, averaged over pixels.

    The teacher is detached; the loss is computed in float32 with autocast
    off.

    Args:
        kind: The task's kind.
        student: The student's raw output (B, C, H, W).
        teacher: The teacher's raw output, same shape.
        temperature: Softmax temperature of ``'seg'`` outputs (> 0).
        valid: Optional (B, 1, H, W) mask of the pixels that count (e.g.
            those whose ground truth is not ignored); None: every pixel.

    Raises:
        ValueError: An unknown kind, or shapes that differ.
    """
    if not float(temperature) > 0:
        raise ValueError(f'distillation: temperature must be > 0, got '
                         f'{temperature!r}')
    if student.shape != teacher.shape:
        raise ValueError(f'distillation: student {tuple(student.shape)} and '
                         f'teacher {tuple(teacher.shape)} differ')
    if valid is not None and (valid.dim() != 4 or valid.shape[1] != 1 or
                              valid.shape[0] != student.shape[0] or
                              valid.shape[2:] != student.shape[2:]):
        raise ValueError(f'distillation: valid mask {tuple(valid.shape)} '
                         f'does not match output {tuple(student.shape)} '
                         f'(B, 1, H, W needed)')
    with full_precision(student):
        s = as_float32(student)
        t = as_float32(teacher.detach())
        if kind == 'seg':
            log_p = F.log_softmax(s / temperature, dim=1)
            log_q = F.log_softmax(t / temperature, dim=1)
            kl = (log_q.exp() * (log_q - log_p)).sum(dim=1, keepdim=True)
            return temperature**2 * _masked_mean(kl, valid)
        if kind == 'binary':
            bce = F.binary_cross_entropy_with_logits(
                s, torch.sigmoid(t), reduction='none')
            return _masked_mean(bce, valid)
        if kind == 'normals':
            diff = (F.normalize(s, p=2, dim=1) -
                    F.normalize(t, p=2, dim=1)).abs()
            return _masked_mean(diff, valid)
        if kind == 'depth':
            return _masked_mean((s - t).abs(), valid)
    raise ValueError(f'distillation: unknown task kind {kind!r} (seg, '
                     f'binary, normals, depth)')


@MODELS.register_module()
class PredictionDistillLoss(nn.Module):
    """Distillation of a teacher's dense predictions into a student's, per
    task (:func:`distill_task` by the task's kind in
    :data:`mmadamtl.utils.TASKS`)::

        loss[task] = loss_weight * task_weights[task]
                     * distill_task(kind(task), student[task],
                                    stopgrad(teacher[task]))

    ``forward`` returns one entry per task of the student's outputs, keyed
    ``'<task>.<loss_name>'`` like ``MultiTaskHead``'s losses, so each is
    logged and the runner sums them. Every value is float32, also under
    autocast.

    Example::

        distill = MODELS.build(dict(type='PredictionDistillLoss',
                                    temperature=2.0,
                                    task_weights=dict(edge=10.0)))
        losses = distill(student_outputs, teacher_outputs)

    Args:
        temperature: Softmax temperature of label tasks (``'seg'``);
            their loss is scaled by ``temperature ** 2``.
        task_weights: Per-task weight (task -> weight); tasks not named
            weigh 1.0.
        loss_weight: Weight of every task's loss.
        loss_name: Name of the loss in the keys.
    """

    def __init__(self,
                 temperature: float = 1.0,
                 task_weights: Optional[Dict[str, float]] = None,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_pkd') -> None:
        super().__init__()
        if not float(temperature) > 0:
            raise ValueError(f'PredictionDistillLoss: temperature must be '
                             f'> 0, got {temperature!r}')
        task_weights = dict(task_weights or {})
        if task_weights:
            check_tasks(task_weights, where='PredictionDistillLoss.'
                        'task_weights')
        for task, w in task_weights.items():
            if not float(w) >= 0:
                raise ValueError(f'PredictionDistillLoss.task_weights'
                                 f'[{task!r}] must be >= 0, got {w!r}')
        if not float(loss_weight) >= 0:
            raise ValueError(f'PredictionDistillLoss: loss_weight must be '
                             f'>= 0, got {loss_weight!r}')
        self.temperature = float(temperature)
        self.task_weights = {t: float(w) for t, w in task_weights.items()}
        self.loss_weight = float(loss_weight)
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self, student: Mapping[str, torch.Tensor],
                teacher: Mapping[str, torch.Tensor],
                valid: Optional[Mapping[str, torch.Tensor]] = None
                ) -> Dict[str, torch.Tensor]:
        """Per task of ``student`` its weighted loss against ``teacher``.

        Args:
            student: Raw outputs per task, (B, C, H, W).
            teacher: Raw outputs per task, a superset of ``student``'s
                tasks, same shapes; detached here.
            valid: Optional per-task (B, 1, H, W) masks of the pixels that
                count; tasks not named count every pixel.

        Returns:
            dict: ``'<task>.<loss_name>'`` -> float32 scalar.

        Raises:
            KeyError: A task of ``student`` the teacher lacks.
            ValueError: An unknown task, or shapes that differ.
        """
        check_tasks(student, where='PredictionDistillLoss student')
        missing = [t for t in student if t not in teacher]
        if missing:
            raise KeyError(f'PredictionDistillLoss: the teacher has no '
                           f'output for {missing} (it has {sorted(teacher)})')
        valid = valid or {}
        losses = {}
        for task, out in student.items():
            value = distill_task(TASKS[task].kind, out, teacher[task],
                                 self.temperature, valid.get(task))
            weight = self.loss_weight * self.task_weights.get(task, 1.0)
            losses[f'{task}.{self.loss_name}'] = weight * value
        return losses
