"""Where a static Swin encoder's time goes, next to where its FLOPs are.

    python tools/encoder_breakdown.py CONFIG [--checkpoint F]
        [--batch-size N] [--shape H W] [--repeats R] [--json]
    python tools/encoder_breakdown.py ADAPTIVE_CONFIG --checkpoint F
        --budget B [--images N] [--batch-size N] [--repeats R] [--json]
    python tools/encoder_breakdown.py ADAPTIVE_CONFIG [--checkpoint F]
        --budget B --floor [--device cuda] [--calibrate] [--cuda-graphs]
        [--random-inputs --shape H W] [--images N] [--batch-size N]

Runs the config's backbone with every block (the package's Swin stage
loop with a runner that times each block's attention and MLP) on noise
images of ``--shape`` (default: the config's ``crop_size``) and reports,
per part, its share of the measured time and its share of the FLOPs (the
closed-form count that equals mmengine's):

- ``attention``: norm1 + shifted-window attention of every block;
- ``MLP``: norm2 + MLP of every block (what token skipping saves);
- ``fixed``: the rest of the forward: patch embedding, patch merging and
  the output norms (run whatever the policy decides).

A policy that skips FLOPs whose share of the time is smaller than their
share of the FLOPs saves less time than FLOPs: this shows by how much.

With ``--budget`` the adaptive encoder (inference path, ``SkipRunner``)
is broken down instead, on the first ``--images`` test images (or noise
images with ``--random-inputs``), with what it executes:

- ``policy``: the block and token selectors (their time inside the calls
  of the policy; FLOPs: ``policy_flops``);
- ``blocks``: the executed blocks (attention and the MLP on the selected
  tokens, with their gathers and scatters), the rest of each block's run;
- ``plans``: each stage's plan read on the host and turned into per-block
  image lists, the rest of each stage's start (no FLOPs);
- ``fixed``: patch embedding, merging, output norms, and the executed
  figures after the forward.

With ``--budget`` and ``--floor``, paired timings (round by round) of
the static encoder (the same stage loop, every block), the adaptive one,
and ``ReplayRunner`` replaying exactly the work the adaptive forward of
each batch executed (recorded once: image sub-batches, MLP rows; the
outputs are checked bit-equal) with no policy, host read or bookkeeping:
the floor of any cut of the adaptive path's overhead. Each row's
latency / GFLOPs is its latency ratio over its executed-GFLOPs ratio
(the replay's without the policy's FLOPs). ``--cuda-graphs`` (CUDA) adds
the static encoder and the replay captured in CUDA graphs: the kernels'
time alone. ``--calibrate`` fits an untrained policy to the budget first
(as ``tools/benchmark.py``).
"""
import argparse
import contextlib
import os.path as osp
import platform
import sys
import time

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmadamtl.apis import init_model  # noqa: E402
from mmadamtl.models.backbones import SwinEncoder  # noqa: E402
from mmadamtl.models.layers import (BlockRunner,  # noqa: E402
                                    attention_residual)
from mmadamtl.models.utils import swin_cost  # noqa: E402
from mmadamtl.utils.cli import (positive_int, progress,  # noqa: E402
                                 run_tool)

PARTS = ('attention', 'MLP', 'fixed')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Time and FLOPs shares of a Swin encoder\'s parts')
    parser.add_argument('config')
    parser.add_argument('--checkpoint')
    parser.add_argument('--batch-size', type=positive_int, default=1)
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'))
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--budget', type=float,
                        help='break down the adaptive encoder at this '
                        'budget (as predict runs it, the config\'s '
                        'budget_mode) instead of the static encoder')
    parser.add_argument('--images', type=int, default=8,
                        help='test images for --budget')
    parser.add_argument('--random-inputs', action='store_true',
                        help='with --budget: noise images of --shape')
    parser.add_argument('--data-root', help='override the test data root')
    parser.add_argument('--floor', action='store_true',
                        help='with --budget: time the static encoder, the '
                        'adaptive one and a replay of its work without '
                        'policy or reads, paired')
    parser.add_argument('--device', default='cpu', help='--floor only')
    parser.add_argument('--calibrate', action='store_true',
                        help='--floor: calibrate an untrained policy to '
                        'the budget (as tools/benchmark.py)')
    parser.add_argument('--cuda-graphs', action='store_true',
                        help='--floor on CUDA: also the static encoder and '
                        'the replay captured in CUDA graphs')
    parser.add_argument('--json', action='store_true')
    return parser.parse_args(argv)


class TimedRunner(BlockRunner):
    """Runs every block in full (the same operations as mmseg's block),
    adding the seconds of its attention and of its MLP to ``times``."""

    def __init__(self, times):
        self.times = times

    def run_block(self, stage, index, block, x, hw_shape):
        start = time.perf_counter()
        x = attention_residual(block, x, hw_shape)
        mid = time.perf_counter()
        x = block.ffn(block.norm2(x), identity=x)
        self.times['attention'] += mid - start
        self.times['MLP'] += time.perf_counter() - mid
        return x


def timed_forward(swin, x, times):
    """The encoder's forward; the time outside the blocks is 'fixed'."""
    before = times['attention'] + times['MLP']
    start = time.perf_counter()
    # The package's stage loop runs on mmseg's Swin modules too.
    SwinEncoder.forward(swin, x, TimedRunner(times))
    in_blocks = times['attention'] + times['MLP'] - before
    times['fixed'] += time.perf_counter() - start - in_blocks


POLICY_CALLS = ('block_decisions', 'token_decisions', 'block_scores')


@contextlib.contextmanager
def timed_policy(policy, times):
    """Inside the block, the policy's decision calls add their seconds to
    ``times['policy']``."""
    def timed(fn):
        def call(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            times['policy'] += time.perf_counter() - start
            return out
        return call

    for name in POLICY_CALLS:
        setattr(policy, name, timed(getattr(policy, name)))
    try:
        yield
    finally:
        for name in POLICY_CALLS:
            delattr(policy, name)


def timed_skip_runner(times):
    """``SkipRunner`` whose stage starts and block runs are timed; what
    the policy takes inside them is booked to ``policy``."""
    from mmadamtl.models.layers import SkipRunner

    class TimedSkipRunner(SkipRunner):

        def _timed(self, key, fn, *args):
            policy = times['policy']
            start = time.perf_counter()
            out = fn(*args)
            times[key] += time.perf_counter() - start - (
                times['policy'] - policy)
            return out

        def start_stage(self, *args):
            return self._timed('plans', super().start_stage, *args)

        def run_block(self, *args):
            return self._timed('blocks', super().run_block, *args)

    return TimedSkipRunner


ADAPTIVE_PARTS = ('policy', 'blocks', 'plans', 'fixed')


def adaptive_batches(args, model, device='cpu'):
    """The preprocessed input batches of an adaptive mode: the first
    ``--images`` test images, or noise images with ``--random-inputs``."""
    from mmadamtl.apis import build_test_dataset, load_batch, random_batch
    if getattr(model.backbone, 'policy', None) is None:
        raise ValueError(f'--budget: {args.config} has no adaptive backbone')
    steps = max(1, args.images // args.batch_size)
    if args.random_inputs:
        shape = args.shape or list(model.cfg.get('crop_size', (512, 512)))
        return [random_batch(model, args.batch_size, shape, seed=s,
                             device=device)['inputs'] for s in range(steps)]
    dataset = build_test_dataset(model.cfg, args.data_root)
    return [load_batch(model, dataset, [
        (s * args.batch_size + k) % len(dataset)
        for k in range(args.batch_size)], device)['inputs']
        for s in range(steps)]


def measure_adaptive(args, model):
    """The adaptive encoder's time per part (see the module's doc)."""
    swin = model.backbone
    batches = adaptive_batches(args, model)
    # The budget input (and cap) predict uses at --budget.
    model.set_budget(args.budget)
    budget, cap = model.budget_inputs()
    times = dict.fromkeys(ADAPTIVE_PARTS, 0.)
    swin.skip_runner = timed_skip_runner(times)
    total, flops = 0., dict.fromkeys(ADAPTIVE_PARTS, 0.)
    with torch.no_grad(), timed_policy(swin.policy, times):
        for r in progress(range(args.repeats + 2), 'adaptive encoder parts'):
            if r == 2:  # two warm-up passes
                times.update(dict.fromkeys(ADAPTIVE_PARTS, 0.))
                total = 0.
            for x in batches:
                start = time.perf_counter()
                swin(x, budget=budget, cap=cap)
                total += time.perf_counter() - start
                if r == 2:
                    st = swin.last_stats
                    cost = swin.cost(x.shape[2:])
                    flops['policy'] += float(st.policy_flops.sum())
                    flops['blocks'] += float(
                        (st.encoder_flops - st.policy_flops).sum()) - \
                        cost.fixed_total * x.shape[0]
                    flops['fixed'] += cost.fixed_total * x.shape[0]
    del swin.skip_runner
    times['fixed'] = total - sum(times[p] for p in ADAPTIVE_PARTS
                                 if p != 'fixed')
    images = len(batches) * args.batch_size
    total_f = sum(flops.values())
    static = swin.cost(batches[0].shape[2:]).total * images
    return dict(
        config=args.config, checkpoint=args.checkpoint, budget=args.budget,
        shape=list(batches[0].shape[2:]), batch_size=args.batch_size,
        images=images, repeats=args.repeats, torch=torch.__version__,
        threads=torch.get_num_threads(),
        ms_per_image=1e3 * total / args.repeats / images,
        gflops_per_image=total_f / images / 1e9,
        executed_share=total_f / static,
        parts={
            p: dict(time_share=times[p] / total,
                    flops_share=flops[p] / total_f,
                    time_per_flops=(times[p] / total) / (flops[p] / total_f)
                    if flops[p] else None)
            for p in ADAPTIVE_PARTS
        })


class _LastTokenDecisions:
    """The policy, recording the last ``token_decisions`` it returned."""

    def __init__(self, policy):
        self._policy = policy
        self.last = None

    def __getattr__(self, name):
        return getattr(self._policy, name)

    def token_decisions(self, *args, **kwargs):
        self.last = self._policy.token_decisions(*args, **kwargs)
        return self.last


def recording_skip_runner(plan):
    """``SkipRunner`` that appends to ``plan``, per block, the work it
    executed: None (skipped by every image) or ``(images, rows)``, the
    image indices that ran it (None: all) and the flat (image, token) rows
    whose MLP ran (None: all), both on the device."""
    from mmadamtl.models.layers import SkipRunner
    from mmadamtl.models.layers.block_runners import index_tensor

    class RecordingSkipRunner(SkipRunner):

        def __init__(self, policy, *args, **kwargs):
            super().__init__(_LastTokenDecisions(policy), *args, **kwargs)

        def run_block(self, stage, index, block, x, hw_shape):
            planned = list(self._images[index])
            self.policy.last = None
            out = super().run_block(stage, index, block, x, hw_shape)
            keep, counts = self.keep_rows[-1], self.token_counts[-1]
            ran = [i for i, k in enumerate(keep) if k]
            if not ran:
                plan.append(None)
                return out
            images = None if len(ran) == len(keep) else index_tensor(ran, x)
            rows = None
            if any(counts[i] < x.shape[1] for i in ran):
                pos = index_tensor([planned.index(i) for i in ran], x)
                selected = self.policy.last.index_select(0, pos)
                rows = selected.reshape(-1).nonzero().squeeze(1)
            plan.append((images, rows))
            return out

    return RecordingSkipRunner


class ReplayRunner(BlockRunner):
    """Runs exactly the work of a recorded adaptive forward (the same
    attention sub-batches, MLP rows, gathers and scatters as
    ``SkipRunner``) with the decisions given: no policy, no read of the
    device, no bookkeeping. What no reduction of the adaptive path's
    overhead can go below."""

    def __init__(self, plan):
        self.plan = plan
        self.k = 0

    def run_block(self, stage, index, block, x, hw_shape):
        from mmadamtl.models.layers.block_runners import (mlp_delta,
                                                          scatter_images)
        entry = self.plan[self.k]
        self.k += 1
        if entry is None:
            return x
        images, rows = entry
        sub = x if images is None else x.index_select(0, images)
        y = attention_residual(block, sub, hw_shape)
        if rows is None:
            y = y + mlp_delta(block, y)
        else:
            flat = y.view(-1, y.shape[-1])
            kept = flat.index_select(0, rows)
            flat.index_copy_(0, rows, kept + mlp_delta(block, kept))
        return y if images is None else scatter_images(x, images, y)


def cuda_graph(fn, x):
    """``fn(x)`` captured in a CUDA graph: ``run()`` replays it on a copy
    of ``x`` (the same input every time)."""
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


def measure_floor(args, model):
    """Paired timings of the static encoder, the adaptive one and the
    replay of the adaptive one's recorded work (``ReplayRunner``), with
    ``--cuda-graphs`` also the static encoder and the replay captured in
    CUDA graphs (no launch cost: what is left is the kernels' time)."""
    from mmadamtl.models.layers import FullRunner
    from mmadamtl.models.policies import calibrate_policy
    from mmadamtl.utils.timing import alternate_timings, paired_summary
    swin = model.backbone
    batches = adaptive_batches(args, model, args.device)
    calibration = None
    if args.calibrate:
        calibration = calibrate_policy(model, batches[0][:2], args.budget)
    model.set_budget(args.budget)
    budget, cap = model.budget_inputs()
    plans, flops = [], dict(static=0., adaptive=0., replay=0.)
    equal = True
    with torch.no_grad():
        for x in batches:
            plan = []
            swin.skip_runner = recording_skip_runner(plan)
            outs = swin(x, budget=budget, cap=cap)
            del swin.skip_runner
            st = swin.last_stats
            flops['static'] += swin.cost(x.shape[2:]).total * x.shape[0]
            flops['adaptive'] += float(st.encoder_flops.sum())
            flops['replay'] += float(
                (st.encoder_flops - st.policy_flops).sum())
            again = SwinEncoder.forward(swin, x.clone(), ReplayRunner(plan))
            equal &= all(torch.equal(a, b) for a, b in zip(outs, again))
            plans.append(plan)

    def static(step):
        SwinEncoder.forward(swin, batches[step], FullRunner())

    def adaptive(step):
        swin(batches[step], budget=budget, cap=cap)

    def replay(step):
        SwinEncoder.forward(swin, batches[step], ReplayRunner(plans[step]))

    fns = dict(static=static, adaptive=adaptive, replay=replay)
    if args.cuda_graphs:
        if not str(args.device).startswith('cuda'):
            raise ValueError('--cuda-graphs needs --device cuda')
        with torch.no_grad():
            graphs = [
                (cuda_graph(lambda x: SwinEncoder.forward(
                    swin, x, FullRunner()), x)[0],
                 cuda_graph(lambda x, p=p: SwinEncoder.forward(
                     swin, x, ReplayRunner(p)), x)[0])
                for x, p in zip(batches, plans)]
        fns.update(static_graph=lambda step: graphs[step][0](),
                   replay_graph=lambda step: graphs[step][1]())
        flops.update(static_graph=flops['static'],
                     replay_graph=flops['replay'])
    with torch.no_grad():
        times = alternate_timings(fns, repeats=args.repeats, warmup=2,
                                  steps=len(batches), device=args.device,
                                  desc='floor timings')
    images = len(batches) * args.batch_size
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
        mode='floor', config=args.config, checkpoint=args.checkpoint,
        budget=args.budget, device=args.device,
        device_name=torch.cuda.get_device_name()
        if str(args.device).startswith('cuda') else platform.processor()
        or platform.machine(),
        shape=list(batches[0].shape[2:]), batch_size=args.batch_size,
        images=images, repeats=args.repeats, torch=torch.__version__,
        threads=torch.get_num_threads(), calibration=calibration,
        replay_equal=bool(equal), rows=rows)


def measure(args):
    if args.floor:
        if args.budget is None:
            raise ValueError('--floor needs --budget')
        return measure_floor(args, init_model(args.config, args.checkpoint,
                                              device=args.device))
    if args.device != 'cpu' or args.calibrate or args.cuda_graphs:
        raise ValueError('--device, --calibrate and --cuda-graphs apply to '
                         '--floor only')
    model = init_model(args.config, args.checkpoint)
    if args.budget is not None:
        return measure_adaptive(args, model)
    swin = model.backbone
    shape = args.shape or list(model.cfg.get('crop_size', (512, 512)))
    x = torch.randn(args.batch_size, 3, *shape)
    times = dict.fromkeys(PARTS, 0.)
    with torch.no_grad():
        for r in progress(range(args.repeats + 2), 'encoder parts'):
            if r == 2:  # two warm-up passes
                times = dict.fromkeys(PARTS, 0.)
            timed_forward(swin, x, times)
    cost = swin_cost(swin, shape)
    flops = dict(attention=cost.attn_total, MLP=cost.mlp_total,
                 fixed=cost.fixed_total)
    total_t, total_f = sum(times.values()), sum(flops.values())
    per_image_ms = 1e3 * total_t / args.repeats / args.batch_size
    return dict(
        config=args.config, shape=shape, batch_size=args.batch_size,
        repeats=args.repeats, torch=torch.__version__,
        threads=torch.get_num_threads(), ms_per_image=per_image_ms,
        gflops_per_image=total_f / 1e9,
        parts={
            p: dict(time_share=times[p] / total_t,
                    flops_share=flops[p] / total_f,
                    time_per_flops=(times[p] / total_t) /
                    (flops[p] / total_f))
            for p in PARTS
        })


FLOOR_ROWS = dict(
    static='static encoder',
    adaptive='adaptive encoder (SkipRunner)',
    replay='replay of its work (no policy, no reads)',
    static_graph='static encoder, CUDA graph',
    replay_graph='replay, CUDA graph')


def render_floor(r) -> str:
    lines = [
        f"{r['config']}: budget {r['budget']:g}, {r['images']} images "
        f"{r['shape'][0]}x{r['shape'][1]}, batch {r['batch_size']}, "
        f"{r['device']} ({r['device_name']}), {r['threads']} threads, "
        f"{r['repeats']} rounds; replay equal to the adaptive outputs: "
        f"{'yes' if r['replay_equal'] else 'NO'}", '',
        '| encoder | ms / image | GFLOPs / image | latency ratio | GFLOPs '
        'ratio | latency / GFLOPs (min - max) |',
        '| --- | --- | --- | --- | --- | --- |'
    ]
    for name, v in r['rows'].items():
        if name.startswith('static'):
            ratio = '-'
        else:
            ratio = (f"{v['latency_over_flops']:.3f} "
                     f"({v['spread']['min']:.3f} - {v['spread']['max']:.3f})")
        lines.append(f"| {FLOOR_ROWS[name]} | {v['ms_per_image']:.3f} | "
                     f"{v['gflops_per_image']:.4f} | "
                     f"{v['latency_ratio']:.3f} | {v['flops_ratio']:.3f} | "
                     f"{ratio} |")
    return '\n'.join(lines)


def render(r) -> str:
    if r.get('mode') == 'floor':
        return render_floor(r)
    if r.get('budget') is not None:
        return render_adaptive(r)
    lines = [
        f"{r['config']}: encoder at {r['shape'][0]}x{r['shape'][1]}, batch "
        f"{r['batch_size']}, {r['threads']} threads: "
        f"{r['ms_per_image']:.2f} ms and {r['gflops_per_image']:.4f} "
        f"GFLOPs per image ({r['repeats']} passes)", '',
        '| part | share of time | share of FLOPs | time share / FLOPs '
        'share |', '| --- | --- | --- | --- |'
    ]
    for p, v in r['parts'].items():
        lines.append(f"| {p} | {100 * v['time_share']:.1f}% | "
                     f"{100 * v['flops_share']:.1f}% | "
                     f"{v['time_per_flops']:.2f} |")
    return '\n'.join(lines)


def render_adaptive(r) -> str:
    lines = [
        f"{r['config']}: adaptive encoder at budget {r['budget']:g}, "
        f"{r['images']} images {r['shape'][0]}x{r['shape'][1]}, batch "
        f"{r['batch_size']}, {r['threads']} threads: {r['ms_per_image']:.2f}"
        f" ms and {r['gflops_per_image']:.4f} GFLOPs per image "
        f"({r['executed_share']:.3f} of the static encoder's; "
        f"{r['repeats']} passes)", '',
        '| part | share of time | share of FLOPs | time share / FLOPs '
        'share |', '| --- | --- | --- | --- |'
    ]
    for p, v in r['parts'].items():
        ratio = '-' if v['time_per_flops'] is None else \
            f"{v['time_per_flops']:.2f}"
        lines.append(f"| {p} | {100 * v['time_share']:.1f}% | "
                     f"{100 * v['flops_share']:.1f}% | {ratio} |")
    return '\n'.join(lines)


def main(argv=None):
    run_tool(argv, parse_args, measure, render)


if __name__ == '__main__':
    main()
