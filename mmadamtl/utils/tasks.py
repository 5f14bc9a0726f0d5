"""The dense tasks mmadamtl knows, and how each is stored and padded.

One table is the single source of truth for the field names a task uses in
the pipeline (``results``), in :class:`SegDataSample` (``gt_*``/``pred_*``),
and for the value that marks an ignored pixel.
"""
from dataclasses import dataclass
from typing import Iterable, List, Sequence


@dataclass(frozen=True)
class TaskSpec:
    """How one dense task is represented.

    Attributes:
        name: The task name used in configs.
        gt_field: ``SegDataSample`` field of the ground truth.
        pred_field: ``SegDataSample`` field of the prediction.
        kind: ``'seg'`` (class labels), ``'binary'`` (0/1 map),
            ``'normals'`` (3-channel unit vectors) or ``'depth'``.
        ignore_value: Value that marks an ignored pixel; also the value used
            to pad the map. For normals an all-zero vector is ignored.
        channels: Channels of the ground-truth map (and of the head's
            output, except for label tasks, whose output has a channel per
            class).
        lower_is_better: Direction of the task's main metric (for Δm).
    """
    name: str
    gt_field: str
    pred_field: str
    kind: str
    ignore_value: float
    channels: int = 1
    lower_is_better: bool = False


TASKS = {
    spec.name: spec
    for spec in (
        TaskSpec('semseg', 'gt_sem_seg', 'pred_sem_seg', 'seg', 255),
        TaskSpec('human_parts', 'gt_human_parts', 'pred_human_parts', 'seg',
                 255),
        TaskSpec('saliency', 'gt_saliency', 'pred_saliency', 'binary', 255),
        TaskSpec('normals', 'gt_normals', 'pred_normals', 'normals', 0,
                 channels=3, lower_is_better=True),
        TaskSpec('edge', 'gt_edge', 'pred_edge', 'binary', 255),
        TaskSpec('depth', 'gt_depth', 'pred_depth', 'depth', 0,
                 lower_is_better=True),
    )
}
# The task a gt_* field belongs to.
TASK_BY_FIELD = {spec.gt_field: spec for spec in TASKS.values()}


def check_tasks(tasks: Iterable[str],
                allowed: Sequence[str] = tuple(TASKS),
                where: str = 'tasks') -> List[str]:
    """Validate task names and return them as a list.

    Args:
        tasks: Task names to check.
        allowed: Names accepted in this context.
        where: What the names belong to, used in the error message.

    Raises:
        ValueError: Naming the first unknown task and the accepted ones.
    """
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
