from .hooks import BudgetScheduleHook, ComplexityLoggerHook

__all__ = ['BudgetScheduleHook', 'ComplexityLoggerHook']
