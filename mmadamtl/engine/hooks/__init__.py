from .budget_calibration_hook import BudgetCalibrationHook
from .budget_schedule_hook import BudgetScheduleHook
from .complexity_logger_hook import ComplexityLoggerHook

__all__ = [
    'BudgetCalibrationHook', 'BudgetScheduleHook', 'ComplexityLoggerHook'
]
