"""Shorten an iteration-based training schedule (``--schedule-scale``).

A quick run of a recipe (``make demo``'s default, a smoke test of a new
config) keeps the recipe's shape: every count of iterations in the config
is multiplied by the same factor, so the warm-up stays the same share of
the run, validation and the last checkpoint still fall on its last
iteration, and the hooks that take a ratio of ``max_iters`` (budget
annealing, task alternation) follow by themselves.
"""
from mmengine.config import Config

# The iteration counts a parameter scheduler may carry.
SCHEDULER_KEYS = ('begin', 'end', 'T_max', 'total_iters', 'step_size')


def scale_schedule(cfg: Config, factor: float) -> Config:
    """Multiply every iteration count of ``cfg`` by ``factor`` (in place;
    returns ``cfg``).

    Scaled: ``train_cfg.max_iters`` and ``val_interval``, the checkpoint
    and logger intervals of ``default_hooks`` and the iteration counts of
    every ``param_scheduler`` (``begin``, ``end``, ``T_max``,
    ``total_iters``, ``step_size``, ``milestones``). A positive count stays
    at least 1, so an interval equal to ``max_iters`` stays equal to the
    new one. Epoch-based loops and schedulers are refused: their length is the
    dataset's.
    """
    if not 0 < factor <= 1:
        raise ValueError(f'schedule scale must be in (0, 1], got {factor}')
    train_cfg = cfg.get('train_cfg')
    if not train_cfg or 'max_iters' not in train_cfg:
        raise ValueError('schedule scale: train_cfg has no max_iters (only '
                         'iteration-based loops are scaled)')
    total = int(train_cfg['max_iters'])

    def scaled(value):
        if value is None or value == float('inf'):
            return value
        return max(1, round(value * factor)) if value > 0 else value

    train_cfg['max_iters'] = scaled(total)
    if 'val_interval' in train_cfg:
        train_cfg['val_interval'] = scaled(train_cfg['val_interval'])
    hooks = cfg.get('default_hooks') or {}
    for name in ('checkpoint', 'logger'):
        if hooks.get(name) and 'interval' in hooks[name]:
            hooks[name]['interval'] = scaled(hooks[name]['interval'])
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for i, sched in enumerate(schedulers):
        if sched.get('by_epoch', True):
            raise ValueError(f'schedule scale: param_scheduler[{i}] '
                             f"({sched.get('type')}) is epoch-based; set "
                             f'by_epoch=False to scale it')
        for key in SCHEDULER_KEYS:
            if key in sched:
                sched[key] = scaled(sched[key])
        if 'milestones' in sched:
            sched['milestones'] = [scaled(m) for m in sched['milestones']]
    return cfg
