from .budget_schedule_hook import BudgetScheduleHook
from .complexity_logger_hook import ComplexityLoggerHook

__all__ = ['BudgetScheduleHook', 'ComplexityLoggerHook']
