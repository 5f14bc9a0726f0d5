"""Where a static Swin encoder's time goes, next to where its FLOPs are.

    python tools/encoder_breakdown.py CONFIG [--checkpoint F]
        [--batch-size N] [--shape H W] [--repeats R] [--json]

Runs the config's backbone with every block (mmseg's forward, taken apart
part by part) on noise images of ``--shape`` (default: the config's
``crop_size``) and reports, per part, its share of the measured time and
its share of the FLOPs (the closed-form count that equals mmengine's):

- ``attention``: norm1 + shifted-window attention of every block;
- ``MLP``: norm2 + MLP of every block (what token skipping saves);
- ``fixed``: patch embedding, patch merging and the output norms (run
  whatever the policy decides).

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

from mmadamtl.apis import init_model, progress, run_tool  # noqa

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


def timed_forward(swin, x, times):
    """mmseg's SwinTransformer.forward, adding each part's seconds to
    ``times``."""

    def tick(part, start):
        times[part] += time.perf_counter() - start

    start = time.perf_counter()
    x, hw = swin.patch_embed(x)
    if swin.use_abs_pos_embed:
        x = x + swin.absolute_pos_embed
    x = swin.drop_after_pos(x)
    tick('fixed', start)
    for i, stage in enumerate(swin.stages):
        for block in stage.blocks:
            start = time.perf_counter()
            x = x + block.attn(block.norm1(x), hw)
            tick('attention', start)
            start = time.perf_counter()
            x = block.ffn(block.norm2(x), identity=x)
            tick('MLP', start)
        start = time.perf_counter()
        out, out_hw = x, hw
        if stage.downsample is not None:
            x, hw = stage.downsample(x, hw)
        if i in swin.out_indices:
            out = getattr(swin, f'norm{i}')(out).view(
                -1, *out_hw, swin.num_features[i]).permute(0, 3, 1,
                                                           2).contiguous()
        tick('fixed', start)


def measure(args):
    from mmadamtl.models.backbones.swin_flops import swin_cost
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
    flops = dict(
        attention=sum(b.attn for s in cost.stages for b in s.blocks),
        MLP=sum(b.mlp_per_token * b.tokens for s in cost.stages
                for b in s.blocks),
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
