from .launch import (add_common_args, load_config, set_local_rank,
                     setup_launcher, shutdown_distributed)
from .safe_checkpoint import (checkpoint_safe_globals, load_checkpoint_file,
                              register_checkpoint_loader)
from .tasks import TASK_BY_FIELD, TASKS, TaskSpec, check_tasks

__all__ = [
    'TASKS', 'TASK_BY_FIELD', 'TaskSpec', 'check_tasks',
    'load_checkpoint_file', 'checkpoint_safe_globals',
    'register_checkpoint_loader', 'setup_launcher', 'load_config',
    'add_common_args', 'set_local_rank', 'shutdown_distributed'
]
