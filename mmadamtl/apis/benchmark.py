"""Wall-clock latency of an efficient model against its static
counterpart, timed alternately in one process: the measurements of
``tools/benchmark.py`` (see its doc for what each row is)."""
import contextlib
import copy
import time
from typing import Optional

import numpy as np
import torch

from mmadamtl.utils.timing import (alternate_timings, paired_summary,
                                   train_step)

from ..evaluation import image_complexity, summarize_complexity
from ..models.utils import compiled_copy


def autocast(device: str, amp: bool):
    """Autocast for ``--amp``: bfloat16 on CPU, float16 on CUDA."""
    if not amp:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if device == 'cpu' else torch.float16
    return torch.autocast(device, dtype=dtype)


def executed(model, batches: list) -> dict:
    """Mean per-image GFLOPs (all tasks) and encoder GFLOPs, and the mean
    block/token keep rates, of what ``model`` executes on ``batches``."""
    with torch.no_grad():
        mean = summarize_complexity(
            image_complexity(s) for b in batches for s in model.predict(
                b['inputs'], copy.deepcopy(b['data_samples'])))
    return dict(gflops=mean['gflops'],
                encoder_gflops=mean['encoder_gflops'],
                policy_gflops=mean.get('policy_gflops', 0.),
                block_keep=float(np.mean(mean.get('block_keep', 1.))),
                token_keep=float(np.mean(mean.get('token_keep', 1.))),
                # Captured mode: what really ran, the bucket padding in.
                run_gflops=mean['gflops'] + (
                    mean['run_encoder_gflops'] - mean['encoder_gflops']
                    if 'run_encoder_gflops' in mean else 0.))


def max_abs_diff(a: dict, b: dict) -> float:
    """The largest |a - b| over the tasks of two models' raw outputs."""
    return max(float((a[t].float() - b[t].float()).abs().max()) for t in a)


def predictor(model, batches: list, device: str, amp: bool = False):
    """``run(step)``: ``model.predict`` on ``batches[step]``."""
    def run(step):
        b = batches[step]
        with torch.no_grad(), autocast(device, amp):
            model.predict(b['inputs'], b['data_samples'])
    return run


def encoder_runner(model, batches: list, device: str, amp: bool = False,
                   control=None):
    """``run(step)``: ``model``'s backbone alone on ``batches[step]``
    under ``control`` (None: the encoder's default, every block)."""
    args = () if control is None else (control, )

    def run(step):
        with torch.no_grad(), autocast(device, amp):
            model.backbone(batches[step]['inputs'], *args)
    return run


def time_inference(static, adaptive, batches: list, rounds: int,
                   warmup: int, device: str, amp: bool = False) -> tuple:
    """Paired summaries of the whole model, the encoder alone (at the
    control ``predict`` uses, so its time and its executed GFLOPs belong
    to the same decisions) and the static path (the adaptive encoder
    without a budget against mmseg's Swin, and mmseg's against a copy of
    itself: the machine's noise)."""
    images = len(batches) * batches[0]['inputs'].shape[0]
    common = dict(repeats=rounds, warmup=warmup, steps=len(batches),
                  device=device)
    t_model = alternate_timings(
        dict(static=predictor(static, batches, device, amp),
             adaptive=predictor(adaptive, batches, device, amp)),
        desc='model latency', **common)
    t_enc = alternate_timings(
        dict(static=encoder_runner(static, batches, device, amp),
             adaptive=encoder_runner(adaptive, batches, device, amp,
                                     adaptive.control())),
        desc='encoder latency', **common)
    mmseg_again = copy.deepcopy(static)
    t_path = alternate_timings(
        dict(mmseg=encoder_runner(static, batches, device, amp),
             ours=encoder_runner(adaptive, batches, device, amp),
             mmseg_again=encoder_runner(mmseg_again, batches, device, amp)),
        desc='static path', **common)
    path = paired_summary(t_path, images, 'ours', 'mmseg')
    path['noise'] = paired_summary(t_path, images, 'mmseg_again',
                                   'mmseg')['ratio'] - 1
    return (paired_summary(t_model, images, 'adaptive', 'static'),
            paired_summary(t_enc, images, 'adaptive', 'static'), path)


def compare_inference(static, adaptive, batches: list, rounds: int,
                      warmup: int, device: str, amp: bool,
                      targets: dict) -> dict:
    """:func:`time_inference` with the executed GFLOPs of both models:
    the model and encoder rows (latency ratio over GFLOPs ratio, per
    round too), the static path's overhead and the policy's share of the
    GFLOPs, each against its ``targets`` (``latency_over_flops``,
    ``static_path_overhead``, ``policy_share``)."""
    flops = dict(static=executed(static, batches),
                 adaptive=executed(adaptive, batches))
    lat_model, lat_enc, lat_path = time_inference(
        static, adaptive, batches, rounds, warmup, device, amp)

    def compare(lat, key):
        ratio = lat['ratio']
        flops_ratio = flops['adaptive'][key] / flops['static'][key]
        return dict(static_ms=lat['static'], adaptive_ms=lat['adaptive'],
                    latency_ratio=ratio, flops_ratio=flops_ratio,
                    latency_over_flops=ratio / flops_ratio,
                    latency_ratio_spread=lat['spread'],
                    latency_over_flops_spread={
                        k: v / flops_ratio
                        for k, v in lat['spread'].items()},
                    target_met=ratio / flops_ratio <=
                    targets['latency_over_flops'])

    overhead = lat_path['ratio'] - 1
    share = flops['adaptive']['policy_gflops'] / flops['adaptive']['gflops']
    return dict(
        executed=flops, model=compare(lat_model, 'gflops'),
        encoder=compare(lat_enc, 'encoder_gflops'),
        static_path=dict(
            mmseg_ms=lat_path['mmseg'], ours_ms=lat_path['ours'],
            overhead=overhead,
            overhead_spread={k: v - 1 for k, v in lat_path['spread'].items()},
            noise=lat_path['noise'],
            target_met=overhead <= targets['static_path_overhead']),
        policy=dict(gflops=flops['adaptive']['policy_gflops'], share=share,
                    target_met=share <= targets['policy_share']))


def time_training(static, adaptive, batches: list, repeats: int,
                  device: str, amp: bool = False,
                  batch_size: Optional[int] = None) -> dict:
    """Paired summary of one training iteration (forward, backward,
    optimizer step) of copies of both models, the adaptive one at its
    inference budget (one per image)."""
    from mmengine.optim import build_optim_wrapper
    budget = adaptive.budget
    models = dict(static=copy.deepcopy(static).train(),
                  adaptive=copy.deepcopy(adaptive).train())
    wrappers = {}
    for name, model in models.items():
        optim_cfg = copy.deepcopy(adaptive.cfg.optim_wrapper)
        if amp and device == 'cuda':
            # mmengine's AmpOptimWrapper (float16 and a loss scaler) works
            # on GPUs only; on CPU the forward runs under bfloat16
            # autocast with the config's wrapper.
            optim_cfg.type = 'AmpOptimWrapper'
        wrappers[name] = build_optim_wrapper(model, optim_cfg)
    size = batch_size or batches[0]['inputs'].shape[0]
    same = [b for b in batches
            if b['inputs'].shape[2:] == batches[0]['inputs'].shape[2:]]
    samples = [s for b in same for s in b['data_samples']][:size]
    inputs = torch.cat([b['inputs'] for b in same])[:size]
    if len(samples) < size:
        raise ValueError(f'--train-batch-size {size} is more than the '
                         f'{len(samples)} loaded images of one size '
                         f'(--num-images)')
    models['adaptive'].set_train_budgets(
        torch.full((size, ), budget, device=device))

    def cpu_amp():
        return autocast(device, amp) if device == 'cpu' else \
            contextlib.nullcontext()

    times = alternate_timings(
        {n: train_step(models[n], wrappers[n], inputs, samples, cpu_amp)
         for n in models}, repeats=repeats,
        warmup=1, device=device, desc='training iteration')
    return paired_summary(times, 1, 'adaptive', 'static')


def time_mtlora(unmerged, merged, static, batches: list, rounds: int,
                warmup: int, device: str, amp: bool = False) -> dict:
    """MTLoRA: the model as trained (adapters unmerged), a copy with its
    TA-LoRA merged into the frozen weights (``merge_lora_model``) and
    ``static`` (the same base weights, no adapters), timed alternately;
    the largest output difference of merged against unmerged."""
    models = dict(static=static, unmerged=unmerged, merged=merged)
    images = len(batches) * batches[0]['inputs'].shape[0]
    with torch.no_grad():
        diff = max(max_abs_diff(unmerged(b['inputs'], mode='tensor'),
                                merged(b['inputs'], mode='tensor'))
                   for b in batches)
    times = alternate_timings(
        {n: predictor(m, batches, device, amp) for n, m in models.items()},
        repeats=rounds, warmup=warmup, steps=len(batches), device=device,
        desc='model latency')
    lat = {k: 1e3 * float(np.median(v)) / images for k, v in times.items()}
    ratio = {n: float(np.median(np.asarray(times[n]) /
                                np.asarray(times['static'])))
             for n in ('unmerged', 'merged')}
    return dict(
        rank=unmerged.backbone.lora_cfg['r'],
        task_streams=list(unmerged.backbone.lora_tasks),
        max_abs_diff=diff,
        gflops={n: executed(m, batches)['gflops']
                for n, m in models.items()},
        latency_ms=lat, latency_ratio=ratio)


def time_captured(static, adaptive, batches: list, rounds: int,
                  warmup: int, device: str, amp: bool = False) -> dict:
    """The adaptive model's captured mode against the static model as a
    user deploys it: ``encode_decode`` (raw maps of the active tasks) of
    the static model eager and compiled whole (``torch.compile``), and of
    the adaptive model eager and captured (``runtime(captured=True)``),
    timed alternately; per-round ratios against the compiled static
    model; the seconds each compiled model's first pass over ``batches``
    took (its compilation, with one run of each batch) and the largest
    difference of captured against eager adaptive outputs. Also timed:
    the static model compiled as the captured pieces are
    (``compile_static``: no guards on the modules), ``static_unguarded``,
    a reference with the same compiler settings."""
    compiled = torch.compile(static.encode_decode, dynamic=False)

    def static_forward(inputs, metas):
        return static.encode_decode(inputs, metas)
    # A code object of its own: dynamo's graphs are kept per code object.
    unguarded = compiled_copy(static_forward)

    def run(fn, captured=None):
        def step(i):
            b = batches[i]
            with torch.no_grad(), autocast(device, amp), (
                    adaptive.runtime(captured=captured) if captured
                    is not None else contextlib.nullcontext()):
                return fn(b['inputs'], None)
        return step

    fns = dict(static_eager=run(static.encode_decode),
               static_compiled=run(compiled),
               static_unguarded=run(unguarded),
               adaptive_eager=run(adaptive.encode_decode, False),
               adaptive_captured=run(adaptive.encode_decode, True))
    compile_s = {}
    for name in ('static_compiled', 'static_unguarded',
                 'adaptive_captured'):
        # The first pass over the batches compiles every shape they need.
        start = time.perf_counter()
        for i in range(len(batches)):
            fns[name](i)
        compile_s[name] = time.perf_counter() - start
    diff = max(max_abs_diff(fns['adaptive_eager'](i),
                            fns['adaptive_captured'](i))
               for i in range(len(batches)))
    times = alternate_timings(fns, repeats=rounds, warmup=warmup,
                              steps=len(batches), device=device,
                              desc='captured latency')
    images = len(batches) * batches[0]['inputs'].shape[0]
    ratios = {n: paired_summary(times, images, n, 'static_compiled')
              for n in fns if n != 'static_compiled'}
    same_compiler = paired_summary(times, images, 'adaptive_captured',
                                   'static_unguarded')
    with adaptive.runtime(captured=True):
        flops = executed(adaptive, batches)
    return dict(
        latency_ms={n: 1e3 * float(np.median(t)) / images
                    for n, t in times.items()},
        latency_ratio={n: r['ratio'] for n, r in ratios.items()},
        latency_ratio_spread={n: r['spread'] for n, r in ratios.items()},
        captured_over_unguarded=same_compiler['spread'],
        compile_s=compile_s, max_abs_diff=diff,
        executed=dict(static=executed(static, batches), adaptive=flops))
