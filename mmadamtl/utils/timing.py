"""Wall-clock timing of callables, alternated so that drifts of the
machine hit all alike."""
import contextlib
import copy
import glob
import json
import os.path as osp
import platform
import time
from typing import Callable, Dict, List

import numpy as np
import torch

from .cli import progress


def synchronize(device: str) -> None:
    """Wait for the device's queued work (CUDA); nothing on CPU."""
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def device_name(device: str) -> str:
    """What a timing on ``device`` ran on: the GPU's name, or the CPU's
    model (``/proc/cpuinfo``, else ``platform``) with the vector
    instruction set torch's CPU kernels dispatch to (e.g. ``AVX512``,
    ``AVX2``): the same code runs at different speeds on the two, so a
    figure names both."""
    if str(device).startswith('cuda'):
        return torch.cuda.get_device_name(torch.device(device))
    name = ''
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    name = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine()
    capability = getattr(torch.backends.cpu, 'get_cpu_capability', None)
    return f'{name} ({capability()})' if capability else name


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


def spread(values) -> dict:
    """min / median / max of per-round values."""
    values = np.asarray(values, dtype=np.float64)
    return dict(min=float(values.min()), median=float(np.median(values)),
                max=float(values.max()))


def paired_summary(times: Dict[str, List[float]], per: int, a: str,
                   b: str) -> dict:
    """From :func:`alternate_timings`: the median ms per item (``per``
    items a round) of each, and the median over rounds of the per-round
    ratio ``a / b`` (paired: both ran in the same round, so drifts of the
    machine cancel), with the ratios' spread."""
    out = {k: 1e3 * float(np.median(v)) / per for k, v in times.items()}
    out['spread'] = spread(np.asarray(times[a]) / np.asarray(times[b]))
    out['ratio'] = out['spread']['median']
    return out


def train_step(model, wrapper, inputs: torch.Tensor, samples: list,
               context: Callable = contextlib.nullcontext
               ) -> Callable[[int], None]:
    """``run(step)``: one training iteration of ``model`` on an already
    preprocessed batch (``BaseModel.train_step`` without the data
    preprocessor): loss under ``wrapper``'s context and ``context()``
    (e.g. autocast), backward and optimizer step; for
    :func:`alternate_timings`."""
    def run(_):
        with wrapper.optim_context(model), context():
            losses = model.loss(inputs, copy.deepcopy(samples))
        loss, _ = model.parse_losses(losses)
        wrapper.update_params(loss)
    return run


def iteration_times(work_dir: str, skip: int = 10) -> list:
    """Seconds per training iteration of a finished ``tools/train.py``
    run, as its ``IterTimerHook`` logged them (``vis_data/scalars.json``),
    after the first ``skip`` iterations."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                      'scalars.json')))
    if not files:
        raise FileNotFoundError(f'{work_dir}: no */vis_data/scalars.json '
                                f'(not a finished tools/train.py run?)')
    times = []
    with open(files[-1], encoding='utf-8') as f:
        for line in f:
            record = json.loads(line)
            if 'time' in record and record.get('iter', 0) > skip:
                times.append(float(record['time']))
    if not times:
        raise ValueError(f'{files[-1]}: no iteration times after iteration '
                         f'{skip}')
    return times


def cuda_graph(fn: Callable[[torch.Tensor], object], x: torch.Tensor):
    """``fn(x)`` captured in a CUDA graph: returns ``(replay, out)``;
    ``replay()`` runs it again on a copy of ``x`` (the same input every
    time), ``out`` is the graph's output."""
    static_x = x.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn(static_x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(static_x)
    graph.replay()
    return graph.replay, out
