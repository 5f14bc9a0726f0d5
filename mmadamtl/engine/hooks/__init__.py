from .atomic_checkpoint_hook import AtomicCheckpointHook
from .bn_recalibration_hook import BNRecalibrationHook
from .budget_calibration_hook import BudgetCalibrationHook
from .budget_schedule_hook import BudgetScheduleHook
from .complexity_logger_hook import ComplexityLoggerHook
from .iter_seed_hook import IterSeedHook
from .learning_guard_hook import LearningGuardHook, NonFiniteTrainingError
from .task_alternation_hook import TaskAlternationHook

__all__ = [
    'AtomicCheckpointHook', 'BNRecalibrationHook',
    'BudgetCalibrationHook', 'BudgetScheduleHook', 'ComplexityLoggerHook',
    'TaskAlternationHook', 'IterSeedHook', 'LearningGuardHook',
    'NonFiniteTrainingError'
]
