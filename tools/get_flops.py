"""Static and executed GFLOPs of a (multi-task, optionally adaptive) model.

    python tools/get_flops.py CONFIG [--checkpoint F] [--budget B]
        [--tasks semseg depth ...] [--shape H W] [--num-images N]
        [--data-root DIR] [--json]

- static: mmengine's counter (its ``FlopAnalyzer``, which
  ``get_model_complexity_info(model, inputs=...)`` also uses) on one
  input of ``--shape`` (default: the config's ``crop_size``), with every
  block and every task head running, and the parameters (all, those
  that train under the config's ``train_cfg.frozen/trainable``, and the
  policy's);
- executed: the adaptive model at ``--budget`` (default: the config's
  ``test_cfg.budget``) on the first N test images, one at a time: mean,
  min and max of the GFLOPs each image really executed (encoder with
  its policy, plus the heads of the tasks run), and the policy network's
  share of them. Images are resized by the test pipeline, so the static
  figures of their own sizes are reported next to them.

GFLOPs are multiply-adds / 1e9 (mmengine's convention).
"""
import argparse
import os.path as osp
import sys

import numpy as np
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmadamtl.apis import build_test_dataset, init_model, load_batch  # noqa
from mmadamtl.evaluation import image_complexity  # noqa: E402
from mmadamtl.models.utils import counted_flops  # noqa: E402
from mmadamtl.utils.cli import (non_negative_int, progress,  # noqa: E402
                                run_tool)

_UNSET = object()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Static and executed GFLOPs of a multi-task model')
    parser.add_argument('config')
    parser.add_argument('--checkpoint', help='weights to load (the policy '
                        'decides the executed GFLOPs)')
    parser.add_argument('--budget', type=float, default=_UNSET,
                        help='inference budget in (0, 1] (default: the '
                        "config's test_cfg.budget)")
    parser.add_argument('--full', action='store_true',
                        help='run every block (no budget)')
    parser.add_argument('--tasks', nargs='+', help='tasks to run '
                        '(default: all the model has)')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="input size of the static count (default: "
                        "the config's crop_size)")
    parser.add_argument('--num-images', type=non_negative_int, default=20,
                        help='test images for the executed GFLOPs '
                        '(0: skip)')
    parser.add_argument('--data-root', help='override the test data root')
    parser.add_argument('--json', action='store_true',
                        help='print one JSON object instead of tables')
    return parser.parse_args(argv)


def static_complexity(model, shape):
    """mmengine's counter on the whole model (every task, every block)."""
    with torch.no_grad(), model.runtime(budget=None):
        flops = counted_flops(model, torch.zeros(1, 3, *shape))
    policy = getattr(model.backbone, 'policy', None)
    return dict(
        shape=list(shape), tasks=model.tasks,
        gflops=flops / 1e9,
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        # What train_cfg.frozen/trainable leave to train (MTLoRA: the
        # adapters, norms, patch embedding, bias tables, reductions and
        # decoders).
        trainable_params_m=sum(p.numel() for p in model.parameters()
                               if p.requires_grad) / 1e6,
        policy_params_m=0. if policy is None else
        sum(p.numel() for p in policy.parameters()) / 1e6)


def summary(values):
    a = np.asarray(values, float)
    return dict(mean=float(a.mean()), min=float(a.min()),
                max=float(a.max()))


def executed_complexity(model, dataset, num_images, budget):
    """Per-image executed GFLOPs at ``budget`` and, for the same images,
    with every block running."""
    rows = []
    n = min(num_images, len(dataset))
    with torch.no_grad():
        for i in progress(range(n), 'executed GFLOPs'):
            data = load_batch(model, dataset, [i])
            with model.runtime(budget=None):
                full = image_complexity(model.predict(**data)[0])
            with model.runtime(budget=budget):
                executed = image_complexity(model.predict(**data)[0])
            rows.append(dict(
                shape=list(data['inputs'].shape[2:]),
                gflops=executed['gflops'],
                encoder_gflops=executed['encoder_gflops'],
                policy_gflops=executed.get('policy_gflops', 0.),
                full_gflops=full['gflops'],
                full_encoder_gflops=full['encoder_gflops']))
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]
            if k != 'shape'}
    return dict(
        num_images=n,
        shapes=sorted({tuple(r['shape']) for r in rows}),
        gflops=summary([r['gflops'] for r in rows]),
        encoder_gflops=summary([r['encoder_gflops'] for r in rows]),
        policy_gflops=summary([r['policy_gflops'] for r in rows]),
        full_gflops=mean['full_gflops'],
        full_encoder_gflops=mean['full_encoder_gflops'],
        ratio=mean['gflops'] / mean['full_gflops'],
        encoder_ratio=mean['encoder_gflops'] / mean['full_encoder_gflops'],
        policy_share=mean['policy_gflops'] / mean['gflops'])


def measure(args):
    model = init_model(args.config, args.checkpoint)
    cfg = model.cfg
    if args.tasks:
        model.set_active_tasks(args.tasks)
    budget = None if args.full else (model.budget if args.budget is _UNSET
                                     else args.budget)
    model.set_budget(budget)
    shape = args.shape or list(cfg.get('crop_size', (512, 512)))
    result = dict(config=args.config, checkpoint=args.checkpoint,
                  adaptive=model.adaptive, budget=budget,
                  tasks=model.active_tasks,
                  static=static_complexity(model, shape))
    if args.num_images > 0:
        dataset = build_test_dataset(cfg, args.data_root)
        result['executed'] = executed_complexity(model, dataset,
                                                 args.num_images, budget)
    return result


def render(r) -> str:
    s = r['static']
    lines = [f"config: {r['config']}  checkpoint: {r['checkpoint']}",
             f"adaptive: {r['adaptive']}  budget: {r['budget']}  "
             f"tasks: {', '.join(r['tasks'])}", '',
             '| static (mmengine counter) | value |', '| --- | --- |',
             f"| input | {s['shape'][0]}x{s['shape'][1]} |",
             f"| GFLOPs (all tasks, every block) | {s['gflops']:.4f} |",
             f"| parameters (M) | {s['params_m']:.3f} |",
             f"| trainable parameters (M) | {s['trainable_params_m']:.3f} "
             f"({100 * s['trainable_params_m'] / s['params_m']:.1f}%) |",
             f"| policy parameters (M) | {s['policy_params_m']:.4f} |"]
    e = r.get('executed')
    if e:
        shapes = ', '.join(f'{h}x{w}' for h, w in e['shapes'])
        lines += ['', f"executed on {e['num_images']} test images "
                  f"(sizes {shapes}), tasks {', '.join(r['tasks'])}:", '',
                  '| | mean | min | max |', '| --- | --- | --- | --- |']
        for key, name in (('gflops', 'GFLOPs'),
                          ('encoder_gflops', 'encoder GFLOPs'),
                          ('policy_gflops', 'policy GFLOPs')):
            v = e[key]
            lines.append(f"| {name} | {v['mean']:.4f} | {v['min']:.4f} | "
                         f"{v['max']:.4f} |")
        lines += ['', f"every block (same images): {e['full_gflops']:.4f} "
                  f"GFLOPs, encoder {e['full_encoder_gflops']:.4f}",
                  f"executed / every block: {e['ratio']:.3f} "
                  f"(encoder {e['encoder_ratio']:.3f})",
                  f"policy network: {100 * e['policy_share']:.2f}% of the "
                  f"executed GFLOPs"]
    return '\n'.join(lines)


def main(argv=None):
    run_tool(argv, parse_args, measure, render)


if __name__ == '__main__':
    main()
