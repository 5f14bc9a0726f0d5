"""Wall-clock latency of the adaptive model against the static one.

    python tools/benchmark.py CONFIG [--checkpoint F] --budget B
        [--batch-size N] [--device cpu|cuda] [--amp] [--num-images N]
        [--rounds R] [--random-inputs] [--shape H W] [--calibrate]
        [--captured] [--skip-train] [--json]

CONFIG is an adaptive config, or an MTLoRA config (no ``--budget``: the
model as trained, with its TA-LoRA merged, and the static model of the
same base weights). The adaptive model's static counterpart is the same
model with mmseg's ``SwinTransformer`` and the same weights. In one
process, after warm-up, alternately (``mmadamtl.apis.benchmark``), with
ratios the median over rounds of each round's ratio, and their spread:

1. model: ``predict`` of both (the adaptive one at ``--budget``), median
   latency per image, the latency ratio next to the executed-GFLOPs one;
2. encoder: both backbones alone, against the encoder-GFLOPs ratio;
3. static path: ``AdaptiveSwinTransformer`` without a budget against
   mmseg's ``SwinTransformer``, and mmseg's against a copy of itself
   (A/A: the machine's noise);
4. one training iteration (forward, backward, AdamW step) of both.

``--captured`` times instead ``encode_decode`` of the static model eager,
compiled whole (``torch.compile``) and compiled as the captured pieces are
(``compile_static``, "static unguarded"), and of the adaptive model eager
and captured (``test_cfg.captured``), against the compiled static model
and its GFLOPs (the captured model's counting the bucket padding).

Inputs: the first ``--num-images`` test images, or with
``--random-inputs`` noise images of ``--shape`` (default: the crop size).
``--calibrate`` makes an untrained policy execute about ``--budget`` on
them (``mmadamtl.models.policies.calibrate_policy``).
"""
import argparse
import copy
import math
import os.path as osp
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmengine.config import DictAction  # noqa: E402

from mmadamtl.apis import (init_model, measurement_batches,  # noqa: E402
                           merge_lora_model, static_counterpart)
from mmadamtl.apis.benchmark import (compare_inference,  # noqa: E402
                                     time_captured, time_mtlora,
                                     time_training)
from mmadamtl.models.backbones import MTLoRASwinTransformer  # noqa: E402
from mmadamtl.models.policies import calibrate_policy  # noqa: E402
from mmadamtl.utils.cli import positive_int, run_tool  # noqa: E402
from mmadamtl.utils.timing import device_name  # noqa: E402

# The targets of docs/benchmarks.md.
LATENCY_OVER_FLOPS_MAX = 1.15
STATIC_PATH_OVERHEAD_MAX = 0.03
POLICY_SHARE_MAX = 0.02
TRAIN_RATIO_MAX = 1.3
TARGETS = dict(latency_over_flops=LATENCY_OVER_FLOPS_MAX,
               static_path_overhead=STATIC_PATH_OVERHEAD_MAX,
               policy_share=POLICY_SHARE_MAX)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Latency of the adaptive model against the static one')
    parser.add_argument('config', help='an adaptive config')
    parser.add_argument('--checkpoint', help='weights (default: random)')
    parser.add_argument('--budget', type=float,
                        help='inference budget (adaptive configs)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys (key=value)')
    parser.add_argument('--batch-size', type=positive_int, default=1)
    parser.add_argument('--num-images', type=positive_int, help='images '
                        'per round (default: 8 for batch 1, else 2 batches)')
    parser.add_argument('--rounds', '--repeats', dest='rounds', type=int,
                        default=5, help='timed rounds (median of the '
                        'per-round ratios, with min and max)')
    parser.add_argument('--warmup', type=int, default=1,
                        help='untimed rounds first')
    parser.add_argument('--device', default='cpu',
                        choices=['cpu', 'cuda'])
    parser.add_argument('--amp', action='store_true',
                        help='autocast (bfloat16 on CPU, float16 on CUDA)')
    parser.add_argument('--threads', type=int,
                        help='torch CPU threads (default: torch\'s)')
    parser.add_argument('--random-inputs', action='store_true',
                        help='noise images instead of the test set')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='size of --random-inputs (default: crop_size)')
    parser.add_argument('--data-root', help='override the test data root')
    parser.add_argument('--calibrate', action='store_true',
                        help='calibrate an untrained policy to the budget')
    parser.add_argument('--captured', action='store_true',
                        help='time the static model eager and compiled, '
                        'the adaptive one eager and captured, instead')
    parser.add_argument('--skip-train', action='store_true',
                        help='do not time training iterations')
    parser.add_argument('--train-repeats', type=int, default=3)
    parser.add_argument('--train-batch-size', type=positive_int,
                        help='training batch (default: --batch-size)')
    parser.add_argument('--json', action='store_true',
                        help='print one JSON object instead of tables')
    return parser.parse_args(argv)


def make_batches(args, model, cfg):
    """Preprocessed batches on the device, and where they come from."""
    n = args.num_images or args.batch_size * (8 if args.batch_size == 1
                                              else 2)
    return measurement_batches(
        model, cfg, math.ceil(n / args.batch_size), args.batch_size,
        args.shape, args.random_inputs, args.data_root, args.device)


def about(args) -> dict:
    return dict(
        config=args.config, checkpoint=args.checkpoint,
        batch_size=args.batch_size, device=args.device, amp=args.amp,
        device_name=device_name(args.device),
        threads=torch.get_num_threads(), torch=torch.__version__,
        rounds=args.rounds)


def measure(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('--device cuda: no CUDA device is available')
    adaptive = init_model(args.config, args.checkpoint, device=args.device,
                          cfg_options=args.cfg_options)
    cfg = adaptive.cfg
    if isinstance(adaptive.backbone, MTLoRASwinTransformer):
        return measure_mtlora(args, adaptive)
    if args.budget is None:
        raise ValueError('--budget is required for an adaptive config')
    if not adaptive.adaptive:
        raise ValueError(f'{args.config} has no adaptive backbone '
                         f'(AdaptiveSwinTransformer with a policy); '
                         f'benchmark compares an adaptive model with its '
                         f'static counterpart')
    adaptive.set_budget(args.budget)
    static = static_counterpart(adaptive, args.device)
    batches, inputs = make_batches(args, static, cfg)

    calibration = None
    if args.calibrate:
        # Two images are enough to place the thresholds.
        calibration = calibrate_policy(
            adaptive, batches[0]['inputs'][:2], args.budget)
    elif not adaptive.policy_loaded:
        print('warning: the policy is untrained (no checkpoint with policy '
              'weights); pass --calibrate to make it follow the budget',
              file=sys.stderr)

    result = dict(about(args), budget=args.budget, inputs=inputs,
                  calibration=calibration)
    timing = (batches, args.rounds, args.warmup, args.device, args.amp)
    if args.captured:
        return dict(result, captured=time_captured(static, adaptive,
                                                   *timing))
    result.update(compare_inference(static, adaptive, *timing, TARGETS))
    if not args.skip_train:
        t = time_training(static, adaptive, batches, args.train_repeats,
                          args.device, args.amp, args.train_batch_size)
        ratio = t['ratio']
        result['train_iter'] = dict(
            batch_size=args.train_batch_size or args.batch_size,
            static_ms=t['static'], adaptive_ms=t['adaptive'], ratio=ratio,
            target_met=ratio <= TRAIN_RATIO_MAX)
    return result


def measure_mtlora(args, unmerged):
    """MTLoRA: the model as trained (adapters unmerged), with its TA-LoRA
    merged into the frozen weights, and the static model (same base
    weights, no adapters); outputs of merged against unmerged."""
    merged = copy.deepcopy(unmerged)
    _, layers = merge_lora_model(merged)
    static = static_counterpart(merged, args.device)
    batches, inputs = make_batches(args, static, unmerged.cfg)
    return dict(about(args), inputs=inputs, mtlora=dict(
        time_mtlora(unmerged, merged, static, batches, args.rounds,
                    args.warmup, args.device, args.amp),
        merged_layers=layers))


def render_mtlora(r) -> str:
    m = r['mtlora']
    lines = [
        f"{r['config']} (checkpoint: {r['checkpoint']}), batch "
        f"{r['batch_size']}, {r['device']} ({r['device_name']}, "
        f"{r['threads']} threads), torch {r['torch']}",
        f"inputs: {r['inputs']}; median of {r['rounds']} rounds, per "
        f"image; TA-LoRA rank {m['rank']}, task streams "
        f"{m['task_streams'] or 'none'}; {m['merged_layers']} layers "
        f"merged; max |merged - unmerged| output {m['max_abs_diff']:.2e}",
        '', '| model | GFLOPs / image | ms / image | latency / static |',
        '| --- | --- | --- | --- |']
    for n in ('static', 'unmerged', 'merged'):
        lines.append(
            f"| {n} | {m['gflops'][n]:.4f} | {m['latency_ms'][n]:.2f} | "
            f"{m['latency_ratio'].get(n, 1.0):.3f} |")
    return '\n'.join(lines)


def header(r, what='') -> list:
    lines = [
        f"{r['config']} (checkpoint: {r['checkpoint']}), budget "
        f"{r['budget']:g}, batch {r['batch_size']}, {r['device']} "
        f"({r['device_name']}, {r['threads']} threads), torch {r['torch']}"
        f"{', AMP' if r['amp'] else ''}",
        f"inputs: {r['inputs']}; {what}median of {r['rounds']} rounds, "
        'per image']
    if r['calibration']:
        c = r['calibration']
        lines.append(f"calibrated policy: block keep {c['block_keep']:.2f}"
                     f", token keep {c['token_keep']:.2f}")
    return lines


def render_captured(r) -> str:
    c = r['captured']
    fs, fa = c['executed']['static'], c['executed']['adaptive']
    nominal, run = (fa['gflops'] / fs['gflops'],
                    fa['run_gflops'] / fs['gflops'])
    lines = header(r, '`encode_decode`, ') + [
        f"first pass over the inputs (compilation): "
        f"static {c['compile_s']['static_compiled']:.0f} s, static "
        f"unguarded {c['compile_s']['static_unguarded']:.0f} s, captured "
        f"{c['compile_s']['adaptive_captured']:.0f} s; max |captured - "
        f"eager| {c['max_abs_diff']:.1e}",
        f"GFLOPs per image: static {fs['gflops']:.4f}, adaptive "
        f"{fa['gflops']:.4f} nominal ({nominal:.3f}x), {fa['run_gflops']:.4f}"
        f" run with the bucket padding ({run:.3f}x)", '',
        '| model | ms / image | latency / compiled static (min / median '
        f'/ max) | latency / run-GFLOPs ratio (target <= '
        f'{LATENCY_OVER_FLOPS_MAX}) |', '| --- | --- | --- | --- |']
    for n, g in (('static_eager', 1.), ('static_compiled', 1.),
                 ('static_unguarded', 1.), ('adaptive_eager', nominal),
                 ('adaptive_captured', run)):
        sp = c['latency_ratio_spread'].get(n, dict(min=1, median=1, max=1))
        ratio = sp['median'] / g
        target = f" ({yes(ratio <= LATENCY_OVER_FLOPS_MAX)})" \
            if n == 'adaptive_captured' else ''
        lines.append(f"| {n.replace('_', ' ')} | {c['latency_ms'][n]:.1f} "
                     f"| {sp['min']:.3f} / {sp['median']:.3f} / "
                     f"{sp['max']:.3f} | {ratio:.3f}{target} |")
    u = c['captured_over_unguarded']
    latency = c['latency_ratio']['adaptive_captured']
    lines += ['', f"captured not slower than the compiled static model: "
              f"{yes(latency <= 1)} ({latency:.3f})",
              f"static unguarded: compiled as the captured pieces are "
              f"(`compile_static`, no guards on the modules); captured "
              f"latency against it: {u['min']:.3f} / {u['median']:.3f} / "
              f"{u['max']:.3f}, over its run-GFLOPs ratio "
              f"{u['median'] / run:.3f}"]
    return '\n'.join(lines)


def yes(ok):
    return 'yes' if ok else 'NO'


def render(r) -> str:
    if 'mtlora' in r:
        return render_mtlora(r)
    if 'captured' in r:
        return render_captured(r)
    fs, fa = r['executed']['static'], r['executed']['adaptive']
    lines = header(r) + [
        '', f"executed per image: static {fs['gflops']:.4f} GFLOPs "
        f"(encoder {fs['encoder_gflops']:.4f}), adaptive "
        f"{fa['gflops']:.4f} (encoder {fa['encoder_gflops']:.4f}, policy "
        f"{fa['policy_gflops']:.4f}); blocks kept {fa['block_keep']:.2f}, "
        f"MLP tokens kept {fa['token_keep']:.2f}", '',
        '| | static (ms/img) | adaptive (ms/img) | latency ratio | '
        f'GFLOPs ratio | latency / GFLOPs ratio (target <= '
        f'{LATENCY_OVER_FLOPS_MAX}) | per round: min / median / max |',
        '| --- | --- | --- | --- | --- | --- | --- |']
    for key, name in (('model', 'model (predict, all tasks)'),
                      ('encoder', 'encoder only')):
        m = r[key]
        sp = m['latency_over_flops_spread']
        lines.append(
            f"| {name} | {m['static_ms']:.2f} | {m['adaptive_ms']:.2f} | "
            f"{m['latency_ratio']:.3f} | {m['flops_ratio']:.3f} | "
            f"{m['latency_over_flops']:.3f} ({yes(m['target_met'])}) | "
            f"{sp['min']:.3f} / {sp['median']:.3f} / {sp['max']:.3f} |")
    p, q = r['static_path'], r['policy']
    lines += ['', '| check | measured | target | met |',
              '| --- | --- | --- | --- |',
              f"| static path: ours {p['ours_ms']:.2f} vs mmseg Swin "
              f"{p['mmseg_ms']:.2f} ms/img | {100 * p['overhead']:+.2f}% | "
              f"<= +{100 * STATIC_PATH_OVERHEAD_MAX:.0f}% | "
              f"{yes(p['target_met'])} |",
              f"| noise: mmseg Swin against a copy of itself (A/A) | "
              f"{100 * p['noise']:+.2f}% | | |",
              f"| policy network share of executed GFLOPs | "
              f"{100 * q['share']:.2f}% | <= {100 * POLICY_SHARE_MAX:.0f}% "
              f"| {yes(q['target_met'])} |"]
    if 'train_iter' in r:
        t = r['train_iter']
        lines.append(
            f"| training iteration (batch {t['batch_size']}): adaptive "
            f"{t['adaptive_ms']:.1f} vs static {t['static_ms']:.1f} ms | "
            f"{t['ratio']:.3f}x | "
            f"<= {TRAIN_RATIO_MAX}x | {yes(t['target_met'])} |")
    return '\n'.join(lines)


def main(argv=None):
    run_tool(argv, parse_args, measure, render)


if __name__ == '__main__':
    main()
