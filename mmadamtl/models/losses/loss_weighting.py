"""Task loss weighting beyond fixed weights.

A ``MultiTaskHead`` built with ``loss_weighting=dict(type=...)`` passes
its per-task losses (each already scaled by the task's fixed
``loss_weight``) through one of these each training step::

    weighted, extra = weighting(losses, shared_features)

``weighted`` replaces each task's loss; ``extra`` adds the weighting's own
loss term (``loss_weighting``, if any) and, logged only, each task's
current weight (``<task>.weight``). Every state lives in parameters or
buffers, so a checkpoint holds it and a resumed run continues exactly.
AdaMTL's ``loss_budget`` is added by the segmentor outside the weighting.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.dist import all_reduce, get_world_size
from mmseg.registry import MODELS

from mmadamtl.utils import check_tasks

Losses = Dict[str, torch.Tensor]


class BaseLossWeighting(nn.Module):
    """Holds the task list; subclasses implement :meth:`weigh`."""

    def setup(self, tasks: Sequence[str]) -> None:
        """Called by ``MultiTaskHead`` with its tasks, before training."""
        self.tasks = list(check_tasks(tasks, where=type(self).__name__))
        self.index = {t: i for i, t in enumerate(self.tasks)}

    def forward(self, losses: Losses, features=None) -> Tuple[Losses,
                                                              Losses]:
        unknown = [t for t in losses if t not in self.index]
        if unknown:
            raise KeyError(f'{type(self).__name__}: losses of {unknown}, '
                           f'set up for {self.tasks}')
        weighted, extra, weights = self.weigh(losses, features)
        for task, w in weights.items():
            extra[f'{task}.weight'] = w.detach()
        return weighted, extra

    def weigh(self, losses: Losses, features) -> Tuple[Losses, Losses,
                                                       Losses]:
        raise NotImplementedError


@MODELS.register_module()
class UncertaintyWeighting(BaseLossWeighting):
    """Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR
    2018): each task learns ``s_t = log sigma_t^2`` and contributes
    ``0.5 * exp(-s_t) * L_t + 0.5 * s_t`` (the regression form, used for
    every task as in LibMTL). The weight logged is ``0.5 * exp(-s_t)``;
    the regulariser ``sum_t 0.5 * s_t`` is ``loss_weighting``.

    Args:
        init_log_var: Initial ``s_t`` (0: weight 0.5 on every task).
    """

    def __init__(self, init_log_var: float = 0.) -> None:
        super().__init__()
        self.init_log_var = float(init_log_var)

    def setup(self, tasks: Sequence[str]) -> None:
        super().setup(tasks)
        self.log_vars = nn.Parameter(
            torch.full((len(self.tasks), ), self.init_log_var))

    def weigh(self, losses, features):
        weighted, weights, reg = {}, {}, 0.
        for task, loss in losses.items():
            s = self.log_vars[self.index[task]]
            weights[task] = 0.5 * torch.exp(-s)
            weighted[task] = weights[task] * loss
            reg = reg + 0.5 * s
        return weighted, dict(loss_weighting=reg), weights


@MODELS.register_module()
class DWAWeighting(BaseLossWeighting):
    """Dynamic weight average (Liu, Johns & Davison, CVPR 2019):
    ``w_t = T * softmax_t(r_t / temperature)`` with
    ``r_t = L_t(k-1) / L_t(k-2)``, the ratio of the task's mean loss over
    the last two periods; ``w_t = 1`` for the first two periods. The
    paper's period is an epoch; here it is ``interval`` training
    iterations (``forward`` calls). Under DDP the losses are averaged over
    the processes, so every process uses the same weights.

    Args:
        interval: Iterations per period.
        temperature: Softmax temperature (the paper's 2).
    """

    def __init__(self, interval: int = 50, temperature: float = 2.) -> None:
        super().__init__()
        if int(interval) < 1:
            raise ValueError(f'DWAWeighting.interval must be >= 1, got '
                             f'{interval}')
        if not temperature > 0:
            raise ValueError(f'DWAWeighting.temperature must be > 0, got '
                             f'{temperature}')
        self.interval = int(interval)
        self.temperature = float(temperature)

    def setup(self, tasks: Sequence[str]) -> None:
        super().setup(tasks)
        n = len(self.tasks)
        self.register_buffer('loss_sum', torch.zeros(n, dtype=torch.float64))
        self.register_buffer('loss_count', torch.zeros(n, dtype=torch.float64))
        self.register_buffer('steps', torch.zeros((), dtype=torch.long))
        # Mean losses of the last two finished periods (row 1 the newest).
        self.register_buffer('history', torch.zeros(2, n,
                                                    dtype=torch.float64))
        self.register_buffer('periods', torch.zeros((), dtype=torch.long))
        self.register_buffer('weights', torch.ones(n))

    @torch.no_grad()
    def _record(self, losses: Losses) -> None:
        values = torch.zeros_like(self.loss_sum)
        present = torch.zeros_like(self.loss_count)
        for task, loss in losses.items():
            values[self.index[task]] = loss.detach().double()
            present[self.index[task]] = 1.
        if get_world_size() > 1:
            both = torch.stack([values, present])
            all_reduce(both, op='sum')
            values, present = both[0], both[1]
        self.loss_sum += values
        self.loss_count += present
        self.steps += 1
        if int(self.steps) % self.interval:
            return
        mean = self.loss_sum / self.loss_count.clamp(min=1)
        self.history[0] = self.history[1]
        self.history[1] = mean
        self.periods += 1
        self.loss_sum.zero_()
        self.loss_count.zero_()
        if int(self.periods) >= 2:
            ratio = self.history[1] / self.history[0].clamp(min=1e-12)
            self.weights.copy_(
                len(self.tasks) *
                torch.softmax(ratio / self.temperature, 0).float())

    def weigh(self, losses, features):
        weights = {t: self.weights[self.index[t]].clone() for t in losses}
        weighted = {t: weights[t] * loss for t, loss in losses.items()}
        if self.training:
            self._record(losses)  # the weights of the next step
        return weighted, {}, weights


@MODELS.register_module()
class GradNormWeighting(BaseLossWeighting):
    """GradNorm (Chen et al., ICML 2018): learnable weights ``w_t`` whose
    own loss ``sum_t |w_t G_t - mean(G) * r_t^alpha|`` balances the
    gradient norms ``G_t = ||d(w_t L_t) / dF||`` on the shared features
    ``F`` (every stage map the decoders read; the paper uses the last
    shared layer's weights) against each task's relative inverse training
    rate ``r_t = (L_t / L_t(0)) / mean(L / L(0))``. Each task's loss is
    ``w_t L_t`` with ``w_t`` detached, so ``loss_weighting`` alone trains
    the weights; they are renormalised to sum to the number of tasks
    before each step. ``L_t(0)`` is the first training step's loss,
    kept in a buffer.

    Costs one extra backward pass through each decoder per step. Needs
    shared features that carry gradients (not MTLoRA's task streams, not a
    frozen encoder).

    Args:
        alpha: Restoring-force strength (the paper's 1.5 for NYUv2).
    """

    def __init__(self, alpha: float = 1.5) -> None:
        super().__init__()
        if alpha < 0:
            raise ValueError(f'GradNormWeighting.alpha must be >= 0, got '
                             f'{alpha}')
        self.alpha = float(alpha)

    def setup(self, tasks: Sequence[str]) -> None:
        super().setup(tasks)
        n = len(self.tasks)
        self.task_weights = nn.Parameter(torch.ones(n))
        self.register_buffer('initial_losses', torch.zeros(n))

    @staticmethod
    def _shared(features) -> List[torch.Tensor]:
        if isinstance(features, dict):
            raise ValueError(
                'GradNormWeighting needs features shared by the tasks; this '
                'backbone gives each task its own (MTLoRA task streams)')
        feats = [f for f in (features or []) if f.requires_grad]
        if not feats:
            raise ValueError(
                'GradNormWeighting: the shared features carry no gradient '
                '(a frozen encoder has no shared layer to balance)')
        return feats

    def weigh(self, losses, features):
        tasks = list(losses)
        idx = torch.tensor([self.index[t] for t in tasks])
        if not self.training:
            w = self.task_weights.detach()[idx]
            return ({t: w[i] * losses[t] for i, t in enumerate(tasks)}, {},
                    {t: w[i] for i, t in enumerate(tasks)})
        with torch.no_grad():
            self.task_weights.clamp_(min=1e-3)
            self.task_weights.mul_(len(self.tasks) / self.task_weights.sum())
            new = self.initial_losses[idx] == 0
            if new.any():
                values = torch.stack([losses[t].detach().float()
                                      for t in tasks])
                self.initial_losses[idx[new]] = values[new]
        feats = self._shared(features)
        norms = []
        for task in tasks:
            grads = torch.autograd.grad(losses[task], feats,
                                        retain_graph=True, allow_unused=True)
            norms.append(torch.sqrt(sum(
                (g.float()**2).sum() for g in grads if g is not None)))
        norms = torch.stack(norms).detach()
        w = self.task_weights[idx]
        values = torch.stack([losses[t].detach().float() for t in tasks])
        ratio = values / self.initial_losses[idx].clamp(min=1e-12)
        rate = ratio / ratio.mean()
        target = ((w.detach() * norms).mean() * rate**self.alpha).detach()
        grad_loss = (w * norms - target).abs().sum()
        weighted = {t: w[i].detach() * losses[t] for i, t in
                    enumerate(tasks)}
        return (weighted, dict(loss_weighting=grad_loss),
                {t: w[i] for i, t in enumerate(tasks)})


def build_loss_weighting(cfg: Optional[dict], tasks: Sequence[str]
                         ) -> Optional[BaseLossWeighting]:
    """The weighting of ``cfg`` set up for ``tasks``; None for None."""
    if cfg is None:
        return None
    weighting = MODELS.build(cfg)
    if not isinstance(weighting, BaseLossWeighting):
        raise TypeError(f'loss_weighting: {cfg.get("type")!r} is not a '
                        f'loss weighting (UncertaintyWeighting, '
                        f'DWAWeighting, GradNormWeighting)')
    weighting.setup(tasks)
    return weighting
