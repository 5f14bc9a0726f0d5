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
import os.path as osp
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmadamtl.apis import init_model, measurement_batches  # noqa: E402
from mmadamtl.apis.profiling import (adaptive_floor,  # noqa: E402
                                     adaptive_parts, static_parts)
from mmadamtl.models.policies import calibrate_policy  # noqa: E402
from mmadamtl.utils.cli import positive_int, run_tool  # noqa: E402


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


def adaptive_batches(args, model, device='cpu'):
    """The preprocessed input batches of an adaptive mode: the first
    ``--images`` test images, or noise images with ``--random-inputs``."""
    if not model.adaptive:
        raise ValueError(f'--budget: {args.config} has no adaptive backbone')
    batches, _ = measurement_batches(
        model, model.cfg, max(1, args.images // args.batch_size),
        args.batch_size, args.shape, args.random_inputs, args.data_root,
        device)
    return [b['inputs'] for b in batches]


def measure(args):
    about = dict(config=args.config, checkpoint=args.checkpoint)
    if args.floor:
        if args.budget is None:
            raise ValueError('--floor needs --budget')
        model = init_model(args.config, args.checkpoint, device=args.device)
        batches = adaptive_batches(args, model, args.device)
        calibration = None
        if args.calibrate:
            calibration = calibrate_policy(model, batches[0][:2],
                                           args.budget)
        model.set_budget(args.budget)
        return dict(about, budget=args.budget, **adaptive_floor(
            model, batches, args.repeats, args.device, args.cuda_graphs,
            calibration))
    if args.device != 'cpu' or args.calibrate or args.cuda_graphs:
        raise ValueError('--device, --calibrate and --cuda-graphs apply to '
                         '--floor only')
    model = init_model(args.config, args.checkpoint)
    if args.budget is not None:
        batches = adaptive_batches(args, model)
        model.set_budget(args.budget)
        return dict(about, budget=args.budget,
                    **adaptive_parts(model, batches, args.repeats))
    shape = args.shape or list(model.cfg.get('crop_size', (512, 512)))
    x = torch.randn(args.batch_size, 3, *shape)
    return dict(config=args.config,
                **static_parts(model, x, args.repeats))


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
