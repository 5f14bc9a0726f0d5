"""Where a static Swin encoder's time goes, next to where its FLOPs are.

    python tools/encoder_breakdown.py CONFIG [--checkpoint F]
        [--batch-size N] [--shape H W] [--repeats R] [--json]
    python tools/encoder_breakdown.py ADAPTIVE_CONFIG --checkpoint F
        --budget B [--images N] [--batch-size N] [--repeats R] [--json]

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
"""
import argparse
import contextlib
import os.path as osp
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
from mmadamtl.utils.cli import progress, run_tool  # noqa: E402

PARTS = ('attention', 'MLP', 'fixed')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Time and FLOPs shares of a Swin encoder\'s parts')
    parser.add_argument('config')
    parser.add_argument('--checkpoint')
    parser.add_argument('--batch-size', type=int, default=1)
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


def measure_adaptive(args, model):
    """The adaptive encoder's time per part (see the module's doc)."""
    from mmadamtl.apis import build_test_dataset, load_batch, random_batch
    swin = model.backbone
    if getattr(swin, 'policy', None) is None:
        raise ValueError(f'--budget: {args.config} has no adaptive backbone')
    if args.random_inputs:
        shape = args.shape or list(model.cfg.get('crop_size', (512, 512)))
        batches = [random_batch(model, args.batch_size, shape, seed=s)[
            'inputs'] for s in range(max(1, args.images // args.batch_size))]
    else:
        dataset = build_test_dataset(model.cfg, args.data_root)
        batches = [load_batch(model, dataset, [
            (s * args.batch_size + k) % len(dataset)
            for k in range(args.batch_size)], 'cpu')['inputs']
            for s in range(max(1, args.images // args.batch_size))]
    # The budget input (and cap) predict uses at --budget.
    model.set_budget(args.budget)
    budget, cap = model._budget_inputs(args.batch_size, 'cpu')
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


def measure(args):
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


def render(r) -> str:
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
