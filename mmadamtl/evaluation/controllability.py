"""How well a controllable model follows its controls.

- Budget control: the share of requests whose executed GFLOPs stay within
  the budget, and the mean |executed - budget| / budget.
- Task control: per task, Spearman's rank correlation between the task's
  preference and its normalised score over sampled preferences; and the
  two measures of "Controllable Dynamic Multi-Task Architectures" (Raychaudhuri
  et al., CVPR 2022, DYMU) over preferences sampled uniformly from the
  simplex: uniformity (Mahapatra & Rajan, ICML 2020)
  ``1 - KL(L_hat || 1/N)`` with ``L_hat_j = r_j L_j / sum_i r_i L_i`` on
  the weighted task losses, and the hypervolume of the loss vectors
  (pymoo) against a fixed reference point.
"""
from typing import Dict, Sequence

import numpy as np


def budget_control(executed: Sequence[float], budgets: Sequence[float]
                   ) -> Dict[str, float]:
    """``within``: share of requests with executed <= budget (both in
    GFLOPs); ``mean_rel_gap``: mean |executed - budget| / budget."""
    e = np.asarray(executed, dtype=np.float64)
    b = np.asarray(budgets, dtype=np.float64)
    if e.shape != b.shape or not e.size:
        raise ValueError('budget_control: need as many executed figures as '
                         'budgets, at least one')
    return dict(within=float(np.mean(e <= b * (1 + 1e-9))),
                mean_rel_gap=float(np.mean(np.abs(e - b) / b)),
                requests=int(e.size))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (scipy), 0 where either is constant."""
    from scipy.stats import spearmanr
    x, y = np.asarray(x, float), np.asarray(y, float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(spearmanr(x, y).statistic)


def uniformity(preference: Sequence[float], losses: Sequence[float]) -> float:
    """DYMU's uniformity of one loss vector under preference ``r``:
    ``1 - KL(L_hat || 1/N)``, ``L_hat_j = r_j L_j / sum_i r_i L_i``
    (1 when the preference-weighted losses are all equal)."""
    r = np.asarray(preference, dtype=np.float64)
    loss = np.asarray(losses, dtype=np.float64)
    if r.shape != loss.shape or np.any(loss <= 0) or np.any(r < 0):
        raise ValueError('uniformity: preference and positive losses of '
                         'one length needed')
    w = r * loss
    p = w / w.sum()
    n = len(p)
    nz = p > 0
    kl = float(np.sum(p[nz] * np.log(p[nz] * n)))
    return 1.0 - kl


def hypervolume(points: Sequence[Sequence[float]],
                reference: Sequence[float]) -> float:
    """Hypervolume dominated by ``points`` (minimisation) up to
    ``reference``, by pymoo's exact ``HV`` indicator."""
    from pymoo.indicators.hv import HV
    pts = np.asarray(points, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != ref.size:
        raise ValueError(f'hypervolume: points {pts.shape} and reference '
                         f'{ref.shape} differ in dimension')
    return float(HV(ref_point=ref)(pts))


def simplex_samples(num: int, dims: int, seed: int = 0,
                    concentration: float = 1.0) -> np.ndarray:
    """``num`` preferences from Dirichlet(``concentration``); 1.0 is the
    uniform distribution on the simplex (DYMU's protocol)."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(dims, float(concentration)), size=num)
