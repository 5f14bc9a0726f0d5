from .budget_loss import BudgetLoss
from .cikd_loss import CIKDLoss
from .distillation import PredictionDistillLoss, distill_task
from .loss_weighting import (BaseLossWeighting, DWAWeighting,
                             GradNormWeighting, UncertaintyWeighting)
from .task_losses import BalancedBCELoss, DepthL1Loss, NormalsL1Loss

__all__ = ['BalancedBCELoss', 'NormalsL1Loss', 'DepthL1Loss', 'BudgetLoss',
           'CIKDLoss', 'PredictionDistillLoss', 'distill_task',
           'BaseLossWeighting', 'UncertaintyWeighting',
           'DWAWeighting', 'GradNormWeighting']
