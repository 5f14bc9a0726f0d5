"""Where an encoder's time goes, next to where its FLOPs are: the
measurements of ``tools/encoder_breakdown.py`` (see its doc for the
parts). The profiling runners plug in through the encoders' public
arguments (``mmadamtl.models.layers.profiling``)."""
import functools
import time
from typing import Dict, List, Optional

import torch

from mmadamtl.utils.cli import progress
from mmadamtl.utils.timing import (alternate_timings, cuda_graph, device_name,
                                   paired_summary)

from ..models.backbones import SwinEncoder
from ..models.layers import FullRunner
from ..models.layers.profiling import (RecordingSkipRunner, ReplayRunner,
                                       TimedRunner, TimedSkipRunner)

PARTS = ('attention', 'MLP', 'fixed')
ADAPTIVE_PARTS = ('policy', 'blocks', 'plans', 'fixed')


def _swin(model) -> SwinEncoder:
    if not isinstance(model.backbone, SwinEncoder):
        raise ValueError(f'the encoder breakdown needs the package\'s Swin '
                         f'(SwinEncoder or a subclass, e.g. '
                         f'AdaptiveSwinTransformer), got '
                         f'{type(model.backbone).__name__}')
    return model.backbone


def _shares(times: dict, flops: dict, parts) -> dict:
    total_t, total_f = sum(times[p] for p in parts), sum(flops.values())
    return {
        p: dict(time_share=times[p] / total_t,
                flops_share=flops[p] / total_f,
                time_per_flops=(times[p] / total_t) / (flops[p] / total_f)
                if flops[p] else None)
        for p in parts
    }


@torch.no_grad()
def static_parts(model, x: torch.Tensor, repeats: int) -> dict:
    """The static encoder's (every block) time and FLOPs per part."""
    swin = _swin(model)
    times = dict.fromkeys(PARTS, 0.)
    for r in progress(range(repeats + 2), 'encoder parts'):
        if r == 2:  # two warm-up passes
            times = dict.fromkeys(PARTS, 0.)
        before = times['attention'] + times['MLP']
        start = time.perf_counter()
        swin.run_stages(x, TimedRunner(times))
        in_blocks = times['attention'] + times['MLP'] - before
        times['fixed'] += time.perf_counter() - start - in_blocks
    cost = swin.cost(x.shape[2:])
    flops = dict(attention=cost.attn_total, MLP=cost.mlp_total,
                 fixed=cost.fixed_total)
    return dict(
        shape=list(x.shape[2:]), batch_size=x.shape[0], repeats=repeats,
        torch=torch.__version__, threads=torch.get_num_threads(),
        ms_per_image=1e3 * sum(times.values()) / repeats / x.shape[0],
        gflops_per_image=sum(flops.values()) / 1e9,
        parts=_shares(times, flops, PARTS))


@torch.no_grad()
def adaptive_parts(model, batches: List[torch.Tensor], repeats: int
                   ) -> dict:
    """The adaptive encoder's time and FLOPs per part at the model's
    settings (``model.control()``, as ``predict`` runs it)."""
    swin = _swin(model)
    control = model.control()
    times = dict.fromkeys(ADAPTIVE_PARTS, 0.)
    runner = functools.partial(TimedSkipRunner, times=times)
    total, flops = 0., dict.fromkeys(ADAPTIVE_PARTS, 0.)
    for r in progress(range(repeats + 2), 'adaptive encoder parts'):
        if r == 2:  # two warm-up passes
            times.update(dict.fromkeys(ADAPTIVE_PARTS, 0.))
            total = 0.
        for x in batches:
            start = time.perf_counter()
            _, st = swin.encode(x, control, skip_runner=runner)
            total += time.perf_counter() - start
            if r == 2:
                cost = swin.cost(x.shape[2:])
                flops['policy'] += float(st.policy_flops.sum())
                flops['blocks'] += float(
                    (st.encoder_flops - st.policy_flops).sum()) - \
                    cost.fixed_total * x.shape[0]
                flops['fixed'] += cost.fixed_total * x.shape[0]
    times['fixed'] = total - sum(times[p] for p in ADAPTIVE_PARTS
                                 if p != 'fixed')
    images = len(batches) * batches[0].shape[0]
    total_f = sum(flops.values())
    static = swin.cost(batches[0].shape[2:]).total * images
    return dict(
        shape=list(batches[0].shape[2:]), batch_size=batches[0].shape[0],
        images=images, repeats=repeats, torch=torch.__version__,
        threads=torch.get_num_threads(),
        ms_per_image=1e3 * total / repeats / images,
        gflops_per_image=total_f / images / 1e9,
        executed_share=total_f / static,
        parts=_shares(times, flops, ADAPTIVE_PARTS))


@torch.no_grad()
def adaptive_floor(model, batches: List[torch.Tensor], repeats: int,
                   device: str = 'cpu', cuda_graphs: bool = False,
                   calibration: Optional[Dict] = None) -> dict:
    """Paired timings of the static encoder, the adaptive one (at the
    model's settings) and the replay of the adaptive one's recorded work
    (``ReplayRunner``), with ``cuda_graphs`` also the static encoder and
    the replay captured in CUDA graphs (no launch cost: what is left is
    the kernels' time)."""
    swin = _swin(model)
    control = model.control()
    plans, flops = [], dict(static=0., adaptive=0., replay=0.)
    equal = True
    for x in batches:
        plan = []
        outs, st = swin.encode(x, control, skip_runner=functools.partial(
            RecordingSkipRunner, plan=plan))
        flops['static'] += swin.cost(x.shape[2:]).total * x.shape[0]
        flops['adaptive'] += float(st.encoder_flops.sum())
        flops['replay'] += float((st.encoder_flops - st.policy_flops).sum())
        again = swin.run_stages(x.clone(), ReplayRunner(plan))
        equal &= all(torch.equal(a, b) for a, b in zip(outs, again))
        plans.append(plan)
    fns = dict(
        static=lambda step: swin.run_stages(batches[step], FullRunner()),
        adaptive=lambda step: swin.encode(batches[step], control),
        replay=lambda step: swin.run_stages(batches[step],
                                            ReplayRunner(plans[step])))
    if cuda_graphs:
        if not str(device).startswith('cuda'):
            raise ValueError('--cuda-graphs needs --device cuda')
        graphs = [
            (cuda_graph(lambda x: swin.run_stages(x, FullRunner()), x)[0],
             cuda_graph(lambda x, p=p: swin.run_stages(x, ReplayRunner(p)),
                        x)[0]) for x, p in zip(batches, plans)]
        fns.update(static_graph=lambda step: graphs[step][0](),
                   replay_graph=lambda step: graphs[step][1]())
        flops.update(static_graph=flops['static'],
                     replay_graph=flops['replay'])
    times = alternate_timings(fns, repeats=repeats, warmup=2,
                              steps=len(batches), device=device,
                              desc='floor timings')
    images = len(batches) * batches[0].shape[0]
    rows = {}
    for name in times:
        base = 'static_graph' if name.endswith('graph') else 'static'
        paired = paired_summary(times, images, name, base)
        flops_ratio = flops[name] / flops[base]
        per_round = {k: v / flops_ratio for k, v in paired['spread'].items()}
        rows[name] = dict(
            ms_per_image=paired[name],
            gflops_per_image=flops[name] / images / 1e9,
            latency_ratio=paired['ratio'],
            flops_ratio=flops_ratio,
            latency_over_flops=per_round['median'],
            spread=per_round)
    return dict(
        mode='floor', device=device,
        device_name=device_name(device),
        shape=list(batches[0].shape[2:]), batch_size=batches[0].shape[0],
        images=images, repeats=repeats, torch=torch.__version__,
        threads=torch.get_num_threads(), calibration=calibration,
        replay_equal=bool(equal), rows=rows)
