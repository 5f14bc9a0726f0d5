"""The dense tasks mmadamtl knows: one row per task.

This table is the single source of truth for a task's field names in the
pipeline (``results``) and in :class:`SegDataSample` (``gt_*``/``pred_*``),
the value that marks an ignored pixel, its default loss, how it is
evaluated and which metric enters Δm. The loader, the flip, the
preprocessor's padding, the head, the segmentor's post-processing, the
metric and the tools all read it. A new task is a new row here, plus a
decoder of its file format in the dataset that provides it.
"""
from dataclasses import dataclass, field
from typing import Iterable, List, Optional, Sequence


@dataclass(frozen=True)
class TaskSpec:
    """How one dense task is represented, trained and evaluated.

    Attributes:
        name: The task name used in configs.
        gt_field: ``SegDataSample`` field of the ground truth.
        pred_field: ``SegDataSample`` field of the prediction.
        kind: ``'seg'`` (class labels), ``'binary'`` (0/1 map),
            ``'normals'`` (3-channel unit vectors) or ``'depth'``; decides
            padding, the output activation and the loss's target format.
        ignore_value: Value that marks an ignored pixel; also the value used
            to pad the map. For normals an all-zero vector is ignored.
        metric: How ``MultiTaskMetric`` evaluates it: ``'miou'``,
            ``'saliency'``, ``'normals'``, ``'edge'`` or ``'depth'``.
        main_metric: The metric (of ``metric``'s outputs) that enters Δm.
        lower_is_better: Direction of the main metric.
        loss: Default loss config (AdaMTL's loss and weight), used where a
            config gives the task no ``loss``.
        classes_key: For label tasks, the ``dataset_meta`` key listing the
            classes (the metric's number of classes).
        channels: Channels of the ground-truth map (and of the head's
            output, except for label tasks, whose output has a channel per
            class).
        label: Short column title of the main metric in tables.
    """
    name: str
    gt_field: str
    pred_field: str
    kind: str
    ignore_value: float
    metric: str
    main_metric: str
    loss: dict = field(default_factory=dict, hash=False)
    lower_is_better: bool = False
    classes_key: Optional[str] = None
    channels: int = 1
    label: str = ''

    @property
    def main_key(self) -> str:
        """Key of the main metric in ``MultiTaskMetric``'s results."""
        return f'{self.name}/{self.main_metric}'


TASKS = {
    spec.name: spec
    for spec in (
        TaskSpec('semseg', 'gt_sem_seg', 'pred_sem_seg', 'seg', 255,
                 metric='miou', main_metric='mIoU', classes_key='classes',
                 loss=dict(type='CrossEntropyLoss', loss_weight=1.0,
                           avg_non_ignore=True),
                 label='semseg mIoU'),
        TaskSpec('human_parts', 'gt_human_parts', 'pred_human_parts', 'seg',
                 255, metric='miou', main_metric='mIoU',
                 classes_key='part_classes',
                 loss=dict(type='CrossEntropyLoss', loss_weight=2.0,
                           avg_non_ignore=True),
                 label='parts mIoU'),
        TaskSpec('saliency', 'gt_saliency', 'pred_saliency', 'binary', 255,
                 metric='saliency', main_metric='maxIoU',
                 loss=dict(type='BalancedBCELoss', loss_weight=5.0),
                 label='sal maxIoU'),
        TaskSpec('normals', 'gt_normals', 'pred_normals', 'normals', 0,
                 metric='normals', main_metric='mean', lower_is_better=True,
                 loss=dict(type='NormalsL1Loss', loss_weight=10.0),
                 channels=3, label='normals mErr'),
        TaskSpec('edge', 'gt_edge', 'pred_edge', 'binary', 255,
                 metric='edge', main_metric='odsF',
                 loss=dict(type='BalancedBCELoss', pos_weight=0.95,
                           loss_weight=50.0),
                 label='edge odsF'),
        TaskSpec('depth', 'gt_depth', 'pred_depth', 'depth', 0,
                 metric='depth', main_metric='rmse', lower_is_better=True,
                 loss=dict(type='DepthL1Loss', loss_weight=1.0),
                 label='depth RMSE'),
    )
}
# The task a gt_* field belongs to.
TASK_BY_FIELD = {spec.gt_field: spec for spec in TASKS.values()}


def check_tasks(tasks: Iterable[str],
                allowed: Optional[Sequence[str]] = None,
                where: str = 'tasks') -> List[str]:
    """Validate task names and return them as a list.

    Args:
        tasks: Task names to check.
        allowed: Names accepted in this context (default: every task of
            :data:`TASKS`).
        where: What the names belong to, used in the error message.

    Raises:
        ValueError: Naming the first unknown task and the accepted ones.
    """
    if allowed is None:
        allowed = list(TASKS)
    if isinstance(tasks, str):
        tasks = [tasks]
    tasks = list(tasks)
    if not tasks:
        raise ValueError(f'{where}: at least one task is required, '
                         f'choose from {list(allowed)}')
    for task in tasks:
        if task not in allowed:
            raise ValueError(f'{where}: unknown task {task!r}; '
                             f'valid tasks are {list(allowed)}')
    if len(set(tasks)) != len(tasks):
        raise ValueError(f'{where}: duplicate task in {tasks}')
    return tasks
