"""Export a trained multi-task model at one control to ONNX.

    python tools/deploy.py CONFIG CHECKPOINT --out DIR [--shape H W]
        [--budget B] [--budgets B ...] [--calibrate]
        [--preference task=w ...] [--subnet JSON]
        [--tasks t ...] [--verify N] [--repeats R] [--device cpu|cuda]
        [--exporter dynamo|torchscript] [--recalibrate-bn N] [--overwrite]

Writes ``DIR/model.onnx`` (input ``image``: the preprocessed batch of one
image of ``--shape``, and for AdaMTL at a budget ``budget``; one output
per task, named by task: its raw map at the input's size, what
``predict`` post-processes) and ``DIR/deploy.json``
(config, checkpoint, shape, control, GFLOPs; with ``--verify N`` the
largest |ONNX Runtime - PyTorch| per task over N random inputs and the
median latency per image of both on ``--device``; a ratio of two ONNX
Runtime graphs comes from timing them alternately in the same rounds).

- static and MTLoRA models (MTLoRA merged first: its merge check in
  ``deploy.json``);
- controllable models: ``--budget``/``--preference`` (through the
  deployment search and the config's lookup table) or ``--subnet`` (e.g.
  ``'{"encoder": "min", "decoders": {"semseg": 0.5}}'``) choose the
  sub-network, made a physically narrow static model first:
  ``DIR/narrow_config.py`` and ``DIR/narrow.pth``, which ``tools/test.py``
  and mmseg's test tool run, checked against the slimmable model;
  ``--recalibrate-bn N`` then re-estimates the narrow model's BatchNorm
  statistics on the first N images of the config's training set at its
  sub-network (the slimmable model's per-width statistics mix every
  encoder that fed them); ``--verify`` also times the narrow graph in
  the same rounds as the widest sub-network exported the same way (its
  latency share);
- AdaMTL: at ``--budget`` an adaptive graph whose second input,
  ``budget`` (shape (1,)), is read in the config's ``budget_mode``
  (``target`` or ``input``; ``cap`` is refused): block decisions as
  ``If`` nodes, MLP tokens gathered by the decisions. ``--verify N``
  compares it with eager PyTorch at each of ``--budgets`` (default: the
  budget) and times it against the same model exported without a budget.
  ``--calibrate`` first makes an untrained policy follow the budget (for
  timing random weights). Without ``--budget``: every block, a static
  graph.

Checkpoints are read weights-only; an existing output is replaced only
with ``--overwrite``.
"""
import argparse
import json
import os.path as osp
import sys

from mmengine.config import DictAction

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmadamtl.apis.deploy import deploy  # noqa: E402
from mmadamtl.utils.cli import (non_negative_int, positive_int,  # noqa: E402
                                run_tool)


def _subnet(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(
            f'--subnet is not JSON ({e}): {text!r}') from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f'--subnet must be a JSON object with "encoder" and/or '
            f'"decoders", got {text!r}')
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?',
                        help='weights (omitted: the initialisation, for '
                        'trying the export)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--shape', type=positive_int, nargs=2,
                        metavar=('H', 'W'), help="input size (default: the "
                        "config's crop_size)")
    parser.add_argument('--budget', type=float,
                        help='controllable: share of the widest model\'s '
                        'GFLOPs; AdaMTL: the example budget of the graph '
                        '(its budget is an input)')
    parser.add_argument('--budgets', type=float, nargs='+',
                        help='AdaMTL: budgets --verify compares and times '
                        '(default: --budget)')
    parser.add_argument('--calibrate', action='store_true',
                        help='AdaMTL: make an untrained policy follow '
                        '--budget and measure its budget curve first (for '
                        'timing random weights)')
    parser.add_argument('--preference', nargs='+', action=DictAction,
                        help='controllable: task=weight ...')
    parser.add_argument('--subnet', type=_subnet,
                        help='controllable: an explicit sub-network (JSON)')
    parser.add_argument('--tasks', nargs='+', help='tasks to export '
                        '(default: all the model runs)')
    parser.add_argument('--verify', type=non_negative_int, default=0,
                        metavar='N',
                        help='compare ONNX Runtime with PyTorch on N '
                        'random inputs and time both')
    parser.add_argument('--repeats', type=positive_int, default=10,
                        help='timed rounds of --verify (each over all '
                        'its inputs)')
    parser.add_argument('--device', default='cpu',
                        help='cpu or cuda (PyTorch and ONNX Runtime)')
    parser.add_argument('--exporter', default='dynamo',
                        choices=['dynamo', 'torchscript'])
    parser.add_argument('--recalibrate-bn', type=non_negative_int, default=0,
                        metavar='N',
                        help='controllable: re-estimate the narrow model\'s '
                        'BatchNorm statistics on N training images (0: off)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys (key=value)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace existing output files')
    parser.add_argument('--json', action='store_true',
                        help='print deploy.json\'s content as JSON')
    args = parser.parse_args(argv)
    return args


def work(args) -> dict:
    from mmengine.config import Config
    shape = args.shape
    if shape is None:
        shape = Config.fromfile(args.config).get('crop_size', (512, 512))
    preference = None if args.preference is None else {
        k: float(v) for k, v in args.preference.items()}
    return deploy(args.config, args.checkpoint, args.out, shape,
                  budget=args.budget, preference=preference,
                  subnet=args.subnet, tasks=args.tasks, verify=args.verify,
                  device=args.device, exporter=args.exporter,
                  repeats=args.repeats, overwrite=args.overwrite,
                  cfg_options=args.cfg_options, budgets=args.budgets,
                  calibrate=args.calibrate,
                  recalibrate_bn=args.recalibrate_bn)


def render(r: dict) -> str:
    lines = [f"{r['method']} model, {r['shape'][0]}x{r['shape'][1]}, tasks "
             f"{', '.join(r['tasks'])}: {r['gflops']:.4f} GFLOPs",
             f"wrote {r['onnx']} (exporter {r['exporter']})"]
    if 'mtlora_merged' in r:
        m = r['mtlora_merged']
        lines.append(f"MTLoRA: {m['layers']} layers merged, outputs within "
                     f"{m['max_abs_diff']:.2e} of the unmerged model")
    n = r.get('narrow')
    if n:
        lines += [
            f"narrow model: {n['config']}, {n['checkpoint']} "
            f"({n['params'] / 1e6:.3f} M parameters, "
            f"{100 * n['params_share']:.1f}% of the slimmable model's)",
            f"  GFLOPs {n['gflops']:.4f} (mmengine's counter "
            f"{n['counted_gflops']:.4f}, closed form "
            f"{n['closed_form_gflops']:.4f}; widest model "
            f"{n['max_gflops']:.4f})",
            '  largest |narrow - slimmable|: ' + ', '.join(
                f'{t} {v:.1e}' for t, v in n['max_abs_diff'].items())]
        bn = n.get('recalibrated_bn')
        if bn:
            lines.append(
                f"  BatchNorm statistics of {bn['layers']} layers "
                f"re-estimated on {bn['images']} training images; largest "
                'output change: ' + ', '.join(
                    f'{t} {v:.1e}' for t, v in bn['max_abs_change'].items()))
    v = r.get('verify')
    if v and 'budgets' in v:
        lines.append(render_adaptive(v))
    elif v:
        lines.append(f"ONNX Runtime vs PyTorch on {v['inputs']} inputs, "
                     'largest |difference|: ' + ', '.join(
                         f'{t} {d:.1e}' for t, d in
                         v['max_abs_diff'].items()))
        lat = v.get('latency_ms')
        if lat:
            lines.append(f"latency per image on {lat['device']} (median of "
                         f"{lat['repeats']}): PyTorch {lat['pytorch']:.2f} "
                         f"ms, ONNX Runtime {lat['onnxruntime']:.2f} ms")
        w = v.get('widest')
        if w:
            sp = w['latency_share_spread']
            share = r['narrow']['gflops'] / w['gflops']
            lines.append(
                f"against the widest sub-network exported the same way "
                f"({w['gflops']:.3f} GFLOPs), ONNX Runtime alternately, "
                f"{w['repeats']} rounds: {w['narrow_onnxruntime_ms']:.2f} "
                f"vs {w['onnxruntime_ms']:.2f} ms, latency share "
                f"{w['latency_share']:.3f} ({sp['min']:.3f}-"
                f"{sp['max']:.3f}) for a GFLOPs share of {share:.3f}")
    return '\n'.join(lines)


def render_adaptive(v: dict) -> str:
    lines = [f"ONNX Runtime vs eager PyTorch on {v['inputs']} inputs x "
             f"{len(v['budgets'])} budgets ({v['budget_mode']}), largest "
             '|difference|: ' + ', '.join(
                 f'{t} {d:.1e}' for t, d in v['max_abs_diff'].items())]
    static = v.get('static')
    if static:
        lines.append(f"static graph (every block): {static['gflops']:.3f} "
                     f"GFLOPs, ONNX Runtime {static['onnxruntime_ms']:.2f} ms")
    for b, row in v['budgets'].items():
        shares = ', '.join(f'{f:.3f}' for f in row['block_fraction'])
        line = (f"budget {b}: block shares run {shares}; "
                f"{row['gflops']:.3f} GFLOPs")
        if 'onnxruntime_ms' in row:
            line += (f"; ONNX Runtime {row['onnxruntime_ms']:.2f} ms, "
                     f"PyTorch {row['pytorch_ms']:.2f} ms")
        if 'latency_over_gflops' in row:
            sp = row['latency_ratio_spread']
            line += (f"; latency {row['latency_ratio']:.3f}x "
                     f"({sp['min']:.3f}-{sp['max']:.3f}) / GFLOPs "
                     f"{row['gflops_ratio']:.3f}x of static = "
                     f"{row['latency_over_gflops']:.3f}")
        lines.append(line)
    return '\n'.join(lines)


def main(argv=None):
    return run_tool(argv, parse_args, work, render)


if __name__ == '__main__':
    main()
