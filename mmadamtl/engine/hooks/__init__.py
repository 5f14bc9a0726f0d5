from .budget_calibration_hook import BudgetCalibrationHook
from .budget_schedule_hook import BudgetScheduleHook
from .complexity_logger_hook import ComplexityLoggerHook
from .task_alternation_hook import TaskAlternationHook

__all__ = [
    'BudgetCalibrationHook', 'BudgetScheduleHook', 'ComplexityLoggerHook',
    'TaskAlternationHook'
]
