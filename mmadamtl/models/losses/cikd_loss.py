"""Configuration-invariant knowledge distillation (CI-KD)."""
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS


@MODELS.register_module()
class CIKDLoss(nn.Module):
    """CI-KD of "Efficient Controllable Multi-Task Architectures" (Aich et
    al., ICCV 2023): a sub-network's encoder features should match the
    widest encoder's, which are detached (the teacher is not pulled
    towards the student)::

        loss = loss_weight * sum_s mean((F_s - stopgrad(T_s)) ** 2)

    over the encoder's stage outputs ``s`` (after their output norms).

    Args:
        loss_weight: Weight of the loss.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = float(loss_weight)

    @property
    def loss_name(self) -> str:
        return 'loss_cikd'

    def forward(self, feats: Sequence[torch.Tensor],
                teacher: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(feats) != len(teacher):
            raise ValueError(f'CIKDLoss: {len(feats)} student stages, '
                             f'{len(teacher)} teacher stages')
        total = feats[0].new_zeros(())
        for f, t in zip(feats, teacher):
            if f.shape != t.shape:
                raise ValueError(f'CIKDLoss: student {tuple(f.shape)} and '
                                 f'teacher {tuple(t.shape)} differ')
            total = total + F.mse_loss(f, t.detach())
        return self.loss_weight * total
