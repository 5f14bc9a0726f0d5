"""Stop a training run that cannot learn, naming what went wrong."""
import math
from typing import Dict, List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmseg.registry import HOOKS


class NonFiniteTrainingError(RuntimeError):
    """A training run had too many consecutive iterations that trained
    nothing: a non-finite loss, or an optimizer step the AMP loss scaler
    skipped."""


@HOOKS.register_module()
class LearningGuardHook(Hook):
    """Raise :class:`NonFiniteTrainingError` after ``patience`` consecutive
    iterations that cannot have trained the model.

    An iteration is lost when its total loss is non-finite, or when the
    AMP loss scaler (``AmpOptimWrapper.loss_scaler``) skipped its optimizer
    step (the scaler lowers its scale exactly when it finds non-finite
    gradients and skips). A finite iteration resets the count, so the few
    skipped steps of a normal AMP warm-up, while the scale settles from
    its initial 65536, do not trip it. The error names the iterations, the
    loss terms that were non-finite and how many steps were skipped.

    It also refuses to save a checkpoint whose weights are not finite
    (:meth:`before_save_checkpoint`), so no NaN model is resumed from or
    handed to the next stage. With a static ``loss_scale`` the scale never
    moves, so skipped steps are not seen; non-finite losses still are.

    On by default (``configs/_base_/default_runtime.py``); switch it off
    with ``default_hooks.learning_guard=None``.

    Args:
        patience: Consecutive lost iterations that stop the run (>= 1).
    """

    priority = 'LOW'

    def __init__(self, patience: int = 20) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) \
                or patience < 1:
            raise ValueError(f'LearningGuardHook: patience must be an '
                             f'integer >= 1, got {patience!r}')
        self.patience = patience
        self._lost = 0
        self._first_lost: Optional[int] = None
        self._skipped = 0
        self._terms: Dict[str, int] = {}
        self._first_terms: List[str] = []
        self._scales: List[float] = []

    @staticmethod
    def _scalers(runner) -> list:
        wrapper = runner.optim_wrapper
        wrappers = wrapper.values() if isinstance(
            wrapper, OptimWrapperDict) else [wrapper]
        return [s for s in (getattr(w, 'loss_scaler', None)
                            for w in wrappers)
                if s is not None and s.is_enabled()]

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        self._scales = [float(s.get_scale()) for s in self._scalers(runner)]

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        bad = self._non_finite_terms(outputs or {})
        after = [float(s.get_scale()) for s in self._scalers(runner)]
        skipped = any(a < b for a, b in zip(after, self._scales))
        if not bad and not skipped:
            self._lost, self._first_lost, self._skipped = 0, None, 0
            self._terms = {}
            return
        if self._first_lost is None:
            # What went wrong first (a NaN step in float32 then spreads
            # to every term through the weights).
            self._first_lost, self._first_terms = runner.iter, bad
        self._lost += 1
        self._skipped += int(skipped)
        for name in bad:
            self._terms[name] = self._terms.get(name, 0) + 1
        if self._lost >= self.patience:
            raise NonFiniteTrainingError(self._message(runner.iter))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Never save weights that are not finite (a float32 step on a NaN
        loss spreads it to every weight): a later ``--resume`` or stage
        would start from them. Raises naming the first parameters
        (buffers may be NaN by design, e.g. an unmeasured budget
        curve)."""
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        bad = [k for k, p in model.named_parameters()
               if not bool(torch.isfinite(p).all())]
        if bad:
            step = (checkpoint.get('meta') or {}).get('iter', runner.iter)
            raise NonFiniteTrainingError(
                f'refusing to save the checkpoint of iteration '
                f'{step}: {len(bad)} parameter(s) hold NaN or '
                f'infinite values, e.g. {", ".join(bad[:3])}'
                + (f'; non-finite loss terms since iteration '
                   f'{self._first_lost + 1}: {", ".join(self._terms)}'
                   if self._terms else ''))

    @staticmethod
    def _non_finite_terms(outputs: dict) -> List[str]:
        """The logged values of ``outputs`` that are not finite (the total
        ``loss`` listed last when any term is)."""
        bad = []
        for name, value in outputs.items():
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    continue
                value = value.item()
            if isinstance(value, (int, float)) and not math.isfinite(value):
                bad.append(name)
        return sorted(bad, key=lambda n: (n == 'loss', n))

    def _message(self, iteration: int) -> str:
        first, last = self._first_lost + 1, iteration + 1
        parts = [
            f'training cannot learn: {self._lost} consecutive iterations '
            f'({first} to {last}) trained nothing (LearningGuardHook, '
            f'patience {self.patience})'
        ]
        if self._first_terms:
            parts.append(f'first non-finite at iteration {first}: '
                         f'{", ".join(self._first_terms)}')
        if self._terms:
            terms = ', '.join(f'{n} ({k}x)' for n, k in self._terms.items())
            parts.append(f'non-finite terms over the {self._lost} '
                         f'iterations: {terms}')
        if self._skipped:
            parts.append(
                f'{self._skipped} optimizer steps skipped by the AMP loss '
                f'scaler (non-finite gradients)')
        return '; '.join(parts)
