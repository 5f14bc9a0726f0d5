"""Wall-clock timing of callables, alternated so that drifts of the
machine hit all alike."""
import time
from typing import Callable, Dict, List

import torch

from .cli import progress


def synchronize(device: str) -> None:
    """Wait for the device's queued work (CUDA); nothing on CPU."""
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def alternate_timings(fns: Dict[str, Callable[[int], object]],
                      repeats: int,
                      warmup: int = 2,
                      steps: int = 1,
                      device: str = 'cpu',
                      desc: str = 'timing') -> Dict[str, List[float]]:
    """Seconds per round of every callable, measured alternately.

    A round calls ``fns[name](step)`` for ``step`` in ``range(steps)``
    (e.g. one call per batch); at every step all callables run one after
    the other, in an order that rotates, so that drifts of the machine
    hit all alike. ``warmup`` rounds are not timed; the result holds one
    total per timed round.
    """
    names = list(fns)
    times = {n: [] for n in names}
    for r in progress(range(warmup + repeats), desc):
        total = dict.fromkeys(names, 0.)
        for step in range(steps):
            shift = (r * steps + step) % len(names)
            for name in names[shift:] + names[:shift]:
                synchronize(device)
                start = time.perf_counter()
                fns[name](step)
                synchronize(device)
                total[name] += time.perf_counter() - start
        if r >= warmup:
            for name in names:
                times[name].append(total[name])
    return times
