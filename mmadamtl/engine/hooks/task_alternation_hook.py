"""AdaMTL's alternating per-task training of a task-aware policy."""
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from mmadamtl.utils import check_tasks

from .budget_schedule_hook import _unwrap


@HOOKS.register_module()
class TaskAlternationHook(Hook):
    """Trains one task at a time, round robin, then all together.

    For the first ``alternate_ratio`` of the run's iterations, turn ``k``
    (``period`` iterations each, by default one epoch of the train
    dataloader) trains task ``tasks[k % T]``: a ``per_task`` policy runs
    (and learns) only that task's mask, and only that task's decoder
    learns. By default only its decoder's loss is trained; with
    ``all_task_losses`` every task's loss is, the other decoders frozen
    (AdaMTL's own schedule, ``USE_SINGLE_TASK_LOSS: False``). The rest
    of the run trains every task, the masks' union. The task of an
    iteration depends on the iteration alone, so a resumed run trains
    what the uninterrupted one would have.

    Args:
        alternate_ratio: Share of the run that alternates, in [0, 1].
        period: Iterations per turn; default: one epoch.
        tasks: Order of the turns; default: the model's tasks.
        all_task_losses: Train every task's loss in a turn, the other
            tasks' decoders frozen.
    """
    priority = 'NORMAL'

    def __init__(self, alternate_ratio: float = 0.5,
                 period: Optional[int] = None,
                 tasks: Optional[Sequence[str]] = None,
                 all_task_losses: bool = False) -> None:
        if not 0 <= alternate_ratio <= 1:
            raise ValueError(f'TaskAlternationHook: alternate_ratio must be '
                             f'in [0, 1], got {alternate_ratio!r}')
        if period is not None and period < 1:
            raise ValueError(f'TaskAlternationHook: period must be >= 1, '
                             f'got {period!r}')
        self.alternate_ratio = alternate_ratio
        self.period = period
        self.tasks = list(tasks) if tasks is not None else None
        self.all_task_losses = bool(all_task_losses)
        self.alternate_iters = 0

    def before_train(self, runner) -> None:
        model = _unwrap(runner.model)
        self.tasks = check_tasks(
            self.tasks or model.tasks, model.tasks,
            where='TaskAlternationHook.tasks')
        if self.period is None:
            self.period = len(runner.train_dataloader)
        self.alternate_iters = round(self.alternate_ratio * runner.max_iters)

    def task_at(self, it: int) -> Optional[str]:
        """The task trained alone at iteration ``it``, None for all."""
        if it >= self.alternate_iters:
            return None
        return self.tasks[(it // self.period) % len(self.tasks)]

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        task = self.task_at(runner.iter)
        _unwrap(runner.model).set_train_tasks(
            None if task is None else [task], self.all_task_losses)

    def after_train(self, runner) -> None:
        _unwrap(runner.model).set_train_tasks(None)
