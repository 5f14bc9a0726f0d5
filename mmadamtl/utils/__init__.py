from .launch import (add_common_args, load_config, set_local_rank,
                     setup_launcher, shutdown_distributed)
from .tasks import TASK_BY_FIELD, TASKS, TaskSpec, check_tasks
from .torch_compat import register_safe_globals

__all__ = [
    'TASKS', 'TASK_BY_FIELD', 'TaskSpec', 'check_tasks',
    'register_safe_globals', 'setup_launcher', 'load_config',
    'add_common_args', 'set_local_rank', 'shutdown_distributed'
]
