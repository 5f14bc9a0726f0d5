"""Losses of the dense regression and binary tasks (mmseg's
``CrossEntropyLoss`` serves the label tasks)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS


@MODELS.register_module()
class BalancedBCELoss(nn.Module):
    """Class-balanced binary cross-entropy (saliency, edges).

    Positives are weighted by ``w`` and negatives by ``1 - w``, where ``w``
    is ``pos_weight`` if given (0.95 for edges in the AdaMTL/MTL code) or
    else the batch's share of negatives. Pixels equal to ``ignore_index``
    are left out; the sum is divided by the number of valid pixels.

    Args:
        pos_weight: Fixed positive weight in (0, 1), or None for balancing.
        ignore_index: Label of ignored pixels.
        loss_weight: Weight of the loss.
        loss_name: Name in the loss dict.
    """

    def __init__(self,
                 pos_weight: Optional[float] = None,
                 ignore_index: int = 255,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_bce') -> None:
        super().__init__()
        if pos_weight is not None and not 0 < pos_weight < 1:
            raise ValueError(f'pos_weight must be in (0, 1), got {pos_weight}')
        self.pos_weight = pos_weight
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                **kwargs) -> torch.Tensor:
        """logits, target: (N, 1, H, W); target holds 0, 1 or ignore."""
        valid = target != self.ignore_index
        labels = (target == 1).float()
        bce = F.binary_cross_entropy_with_logits(
            logits, labels, reduction='none')
        pos = (bce * labels * valid).sum()
        neg = (bce * (1 - labels) * valid).sum()
        num_valid = valid.sum().clamp(min=1)
        if self.pos_weight is None:
            num_pos = (labels * valid).sum()
            w = (num_valid - num_pos) / num_valid
        else:
            w = self.pos_weight
        return self.loss_weight * (w * pos + (1 - w) * neg) / num_valid

    @property
    def loss_name(self) -> str:
        return self._loss_name


@MODELS.register_module()
class NormalsL1Loss(nn.Module):
    """L1 between the L2-normalised prediction and the unit ground truth.

    Pixels whose ground-truth vector is all zero are ignored. The sum of
    absolute differences is divided by the number of valid elements
    (3 per valid pixel).
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_normals') -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                **kwargs) -> torch.Tensor:
        """pred, target: (N, 3, H, W)."""
        valid = (target.abs().sum(dim=1, keepdim=True) > 0).float()
        pred = F.normalize(pred, p=2, dim=1)
        diff = (pred - target).abs() * valid
        return self.loss_weight * diff.sum() / (3 * valid.sum()).clamp(min=1)

    @property
    def loss_name(self) -> str:
        return self._loss_name


@MODELS.register_module()
class DepthL1Loss(nn.Module):
    """L1 on depth; pixels whose ground truth equals ``ignore_value`` (0 in
    NYUD, also the padding value) are left out."""

    def __init__(self,
                 ignore_value: float = 0.,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_depth') -> None:
        super().__init__()
        self.ignore_value = ignore_value
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                **kwargs) -> torch.Tensor:
        """pred, target: (N, 1, H, W)."""
        valid = (target != self.ignore_value).float()
        diff = (pred - target).abs() * valid
        return self.loss_weight * diff.sum() / valid.sum().clamp(min=1)

    @property
    def loss_name(self) -> str:
        return self._loss_name
