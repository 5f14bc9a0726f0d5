from .launch import setup_launcher
from .tasks import TASKS, TaskSpec, check_tasks
from .torch_compat import register_safe_globals

__all__ = [
    'TASKS', 'TaskSpec', 'check_tasks', 'register_safe_globals',
    'setup_launcher'
]
