"""Where a static Swin encoder's time goes, next to where its FLOPs are.

    python tools/encoder_breakdown.py CONFIG [--checkpoint F]
        [--batch-size N] [--shape H W] [--repeats R] [--json]

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
"""
import argparse
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


def measure(args):
    model = init_model(args.config, args.checkpoint)
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


def main(argv=None):
    run_tool(argv, parse_args, measure, render)


if __name__ == '__main__':
    main()
